#!/bin/sh
# Finding 10 of issue 15, the smaller ones:
#  - a dataset truncated under a running broker: one clear ERROR line
#    naming it (SIGBUS caught), exit 1, instead of a silent death;
#  - softlabel-student --teacher t,t and --teacher-weights 0: exit 2;
#  - a temp file of a killed writer (export) is removed by the next one;
#  - --map-size: the cache's map is an option; under ulimit -v the 1 TiB
#    default fails naming the map and --map-size, a smaller map starts.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 500 "$T/y.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 2.0 1 --batch 250

# --- student usage errors ----------------------------------------------------
student() { "$BIN/softlabel-student" --store "$T/cache" --dataset "$T/x.npy" \
    --labels "$T/y.npy" --arch 784-16-10 --epochs 1 --out "$T/s.safetensors" "$@"; }
set +e
student --teacher t,t 2>"$T/s1.err"; rc1=$?
student --teacher t --teacher-weights 0 2>"$T/s2.err"; rc2=$?
set -e
cat "$T/s1.err" "$T/s2.err"
sl_check "$rc1 -eq 2" "--teacher t,t: exit $rc1, not 2"
grep -q "'t' named twice" "$T/s1.err" || sl_fail "--teacher t,t: no clear reason"
sl_check "$rc2 -eq 2" "--teacher-weights 0: exit $rc2, not 2"
grep -q "sum to 0" "$T/s2.err" || sl_fail "--teacher-weights 0: no clear reason"

# --- a killed writer's temp file --------------------------------------------------
dead=$(sh -c 'echo $$')        # a pid that no longer runs
: >"$T/probs.npy.tmp.$dead"
"$BIN/softlabel" export "$T/cache" --teacher t --out "$T/probs.npy" 2>"$T/export.err" ||
    sl_fail "export: $(cat "$T/export.err")"
[ ! -e "$T/probs.npy.tmp.$dead" ] || sl_fail "the stale temp file is still there"
[ -s "$T/probs.npy" ] || sl_fail "no export"
echo "stale $T/probs.npy.tmp.$dead removed"

# --- --map-size ----------------------------------------------------------------------
set +e
"$BIN/softlabel-broker" --store "$T/c2" --dataset "$T/x.npy" --map-size 1000 2>"$T/m0.err"; rc=$?
set -e
sl_check "$rc -eq 2" "--map-size 1000: exit $rc, not 2"
"$BIN/softlabel-broker" --help | grep -q -- "--map-size B .*(default 1099511627776)" ||
    sl_fail "--help does not document --map-size and its default"
if [ -z "${SL_SANITIZED:-}" ]; then # ASan's shadow memory needs more address space
	vbroker() { ulimit -v 4000000 && exec "$BIN/softlabel-broker" "$@"; }
	set +e
	(vbroker --store "$T/c3" --dataset "$T/x.npy" --bind "tcp://127.0.0.1:$(sl_free_port)" \
	    2>"$T/m1.err"); rc=$?
	set -e
	cat "$T/m1.err" | tail -1
	sl_check "$rc -eq 1" "1 TiB map under ulimit -v: exit $rc, not 1"
	grep -q "map reserves 1099511627776 bytes of address space.*--map-size" "$T/m1.err" ||
	    sl_fail "the ENOMEM does not name the map: $(tail -1 "$T/m1.err")"
	P=$(sl_free_port)
	sl_bg VB vbroker --store "$T/c4" --dataset "$T/x.npy" --bind "tcp://127.0.0.1:$P" \
	    --map-size 268435456 2>"$T/m2.err"
	sl_wait_log "$T/m2.err" " $VB softlabel-broker INFO ready" 30
	kill "$VB"; sl_wait_pid "$VB" 30 || true
fi

# --- a dataset truncated under the broker ---------------------------------------------
cp "$T/x.npy" "$T/x2.npy"
sl_start_broker "$T/c5" "$T/x2.npy" "$T/b5.log" --shard-rows 100
$DPY -c "import os,sys; os.truncate(sys.argv[1], 128)" "$T/x2.npy"
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --threads 1 2>"$T/w5.log"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; set -e
tail -2 "$T/b5.log"
sl_check "$rc -eq 1" "broker on a truncated dataset: exit $rc, not 1"
grep -q "softlabel-broker ERROR SIGBUS at 0x[0-9a-f]*: a memory-mapped file shrank while in use (the dataset $T/x2.npy" "$T/b5.log" ||
    sl_fail "no clear line about the truncated dataset: $(tail -2 "$T/b5.log")"
echo "finding 10 smalls hold"
