#!/bin/sh
# A job split over two brokers (--rows), read as one by verify, export and
# serve, as the student's --store A,B reads it: verify checks each part
# and the union's coverage (rows no cache labels are a problem and are
# named), export of the union is byte for byte the export of one cache
# labeled over all rows, a student over one `softlabel serve B,A` trains
# the model a local --store A,B trains (one thread, byte for byte), and
# lists that are not one job (overlapping rows, another dataset, another
# registration of a teacher) are refused with exit 2 and the student's
# messages.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 3000 "$T/x.npy"
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 3000 "$T/x2.npy"
$DPY - "$T/x2.npy" <<'PY'
import sys, numpy as np
a = np.load(sys.argv[1]); a[7, 10, 10] ^= 1; np.save(sys.argv[1], a)
PY
sl_make_teacher "$T/teacher.safetensors"

label() { # store log dataset worker-args -- broker-args...
	_s=$1 _l=$2 _d=$3 _w=$4; shift 4
	BROKER_PORT=$(sl_free_port)
	sl_start_broker "$_s" "$_d" "$_l" --shard-rows 500 --exit-when-done "$@"
	# shellcheck disable=SC2086
	sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
	    --name t --threads 1 --batch 250 $_w 2>>"$_l.w"
	set +e; sl_wait_pid "$BROKER_PID" 120; _rc=$?; sl_wait_pid "$W" 30; set -e
	sl_check "$_rc -eq 0" "broker on $_s: exit $_rc: $(tail -2 "$_l")"
	BROKER_PORT=
}
label "$T/full" "$T/full.log" "$T/x.npy" ""
label "$T/a" "$T/a.log" "$T/x.npy" "" --rows 0:1000
label "$T/b" "$T/b.log" "$T/x.npy" "" --rows 1000:
label "$T/e" "$T/e.log" "$T/x.npy" "" --rows 2000:

# --- verify ------------------------------------------------------------------------------------
"$BIN/softlabel" verify "$T/b,$T/a" >"$T/v" || sl_fail "verify b,a: $(cat "$T/v")"
grep -q "^teacher t: 1000 records in 2/2 done shards checked, 0 problems" "$T/v" || sl_fail "verify b,a: no line of a: $(cat "$T/v")"
grep -q "^teacher t: 2000 records in 4/4 done shards checked, 0 problems" "$T/v" || sl_fail "verify b,a: no line of b: $(cat "$T/v")"
grep -q "^$T/a: 1000 records, ok" "$T/v" || sl_fail "verify b,a: $(cat "$T/v")"
grep -q "^union: teacher t: 3000 of 3000 rows done in 2 caches" "$T/v" || sl_fail "verify b,a: $(cat "$T/v")"
grep -q "^union of 2 caches: ok$" "$T/v" || sl_fail "verify b,a: $(cat "$T/v")"
grep -q "missing" "$T/v" && sl_fail "verify b,a names missing rows: $(cat "$T/v")"
# a and e leave rows 1000:2000 to no cache: a problem, named.
set +e; "$BIN/softlabel" verify "$T/e,$T/a" >"$T/v2"; rc=$?; set -e
sl_check "$rc -eq 1" "verify e,a: exit $rc: $(cat "$T/v2")"
grep -q "^PROBLEM union: rows 1000:2000 are in none of the caches listed" "$T/v2" || sl_fail "verify e,a: $(cat "$T/v2")"
grep -q "^union: teacher t: rows 1000:2000 missing (shards 2..3 not done)" "$T/v2" || sl_fail "verify e,a: $(cat "$T/v2")"
grep -q "^union: teacher t: 2000 of 3000 rows done in 2 caches" "$T/v2" || sl_fail "verify e,a: $(cat "$T/v2")"
grep -q "^union of 2 caches: PROBLEMS FOUND" "$T/v2" || sl_fail "verify e,a: $(cat "$T/v2")"
echo "verify b,a: each part and the union (3000 of 3000 rows); e,a: rows 1000:2000 named missing, exit 1"

# --- export ------------------------------------------------------------------------------------
"$BIN/softlabel" export "$T/full" --out "$T/full.npy" >"$T/ef" || sl_fail "export full: $(cat "$T/ef")"
"$BIN/softlabel" export "$T/b,$T/a" --out "$T/ba.npy" >"$T/eba" || sl_fail "export b,a: $(cat "$T/eba")"
grep -q "3000 rows present, 0 absent (NaN), 0 corrupt skipped" "$T/eba" || sl_fail "export b,a: $(cat "$T/eba")"
cmp "$T/full.npy" "$T/ba.npy" || sl_fail "the export of b,a is not the export of the full cache"
"$BIN/softlabel" export "$T/a,$T/b" --teacher t --temperature 5 --out "$T/ab5.npy" >/dev/null
"$BIN/softlabel" export "$T/full" --teacher t --temperature 5 --out "$T/full5.npy" >/dev/null
cmp "$T/full5.npy" "$T/ab5.npy" || sl_fail "the export of a,b at T=5 is not the full cache's"
# The union with a hole: NaN rows exactly where no cache labels.
"$BIN/softlabel" export "$T/a,$T/e" --out "$T/ae.npy" >"$T/eae" || sl_fail "export a,e: $(cat "$T/eae")"
$DPY - "$T/ae.npy" "$T/full.npy" <<'PY' || sl_fail "export a,e is not full with rows 1000:2000 NaN"
import sys, numpy as np
ae, full = np.load(sys.argv[1]), np.load(sys.argv[2])
assert ae.shape == full.shape == (3000, 10), (ae.shape, full.shape)
assert np.isnan(ae[1000:2000]).all() and not np.isnan(ae[:1000]).any() and not np.isnan(ae[2000:]).any()
assert (ae[:1000] == full[:1000]).all() and (ae[2000:] == full[2000:]).all()
assert np.allclose(full.sum(1), 1, atol=1e-5)
print("a,e: rows 0:1000 and 2000:3000 as the full export, 1000:2000 NaN")
PY
echo "export b,a (and a,b at T=5) is byte for byte the export of one cache over all rows"

# --- serve -------------------------------------------------------------------------------------
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
sl_bg SPID "$BIN/softlabel" serve "$T/b,$T/a" --bind "$EP" 2>>"$T/serve.log"
sl_wait_log "$T/serve.log" " $SPID softlabel-serve INFO ready bind=$EP " 30
train() { # out store
	"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$2" --alpha 1 --temperature 2 \
	    --arch 784-16-10 --epochs 2 --threads 1 --min-confidence 0.3 --balance 100 \
	    --metrics "$T/$1.jsonl" --out "$T/$1.safetensors" 2>"$T/$1.log" ||
	    sl_fail "student on $2: $(tail -2 "$T/$1.log")"
}
train local "$T/a,$T/b"
train remote "$EP"
cmp "$T/local.safetensors" "$T/remote.safetensors" || sl_fail "the student over serve b,a differs from --store a,b"
sl_check "$(sl_metric "$T/remote.jsonl" rows_with_target) -eq 3000" "remote targets: $(tail -1 "$T/remote.jsonl")"
grep -q "the cache covers" "$T/remote.log" && sl_fail "the remote student warned of coverage: $(grep WARN "$T/remote.log")"
kill -TERM "$SPID"
set +e; sl_wait_pid "$SPID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "serve b,a: exit $rc after SIGTERM: $(tail -2 "$T/serve.log")"
# serve of a list with a hole answers what the union has.
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
sl_bg SPID "$BIN/softlabel" serve "$T/e,$T/a" --bind "$EP" 2>>"$T/serve2.log"
sl_wait_log "$T/serve2.log" " $SPID softlabel-serve INFO ready bind=$EP " 30
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$EP" --alpha 1 --temperature 2 \
    --arch 784-16-10 --epochs 1 --threads 1 --metrics "$T/hole.jsonl" \
    --out "$T/hole.safetensors" 2>"$T/hole.log" || sl_fail "student on serve e,a: $(tail -2 "$T/hole.log")"
grep -q "the cache covers 2000 of 3000 rows" "$T/hole.log" || sl_fail "student on serve e,a: $(grep WARN "$T/hole.log")"
kill -TERM "$SPID"; set +e; sl_wait_pid "$SPID" 20; set -e
echo "a student over serve b,a trains the model --store a,b trains, byte for byte; serve e,a covers 2000 of 3000 rows"

# --- refused lists: exit 2, the student's messages -------------------------------------------------
label "$T/f" "$T/f.log" "$T/x2.npy" "" --rows 1000:
label "$T/g" "$T/g.log" "$T/x.npy" "--temperature 3" --rows 1000:
refused() { # pattern list
	for cmd in verify export serve; do
		set +e
		case $cmd in
		verify) "$BIN/softlabel" verify "$2" >"$T/out" 2>"$T/err" ;;
		export) "$BIN/softlabel" export "$2" --out "$T/no.npy" >"$T/out" 2>"$T/err" ;;
		serve) "$BIN/softlabel" serve "$2" --bind "tcp://127.0.0.1:$(sl_free_port)" >"$T/out" 2>"$T/err" ;;
		esac
		_rc=$?
		set -e
		sl_check "$_rc -eq 2" "$cmd $2: exit $_rc, not 2: $(cat "$T/err")"
		grep -q "$1" "$T/err" || sl_fail "$cmd $2: $(cat "$T/err")"
		[ "$(wc -l <"$T/err")" -eq 1 ] || sl_fail "$cmd $2: not one line: $(cat "$T/err")"
		[ -s "$T/out" ] && sl_fail "$cmd $2 printed: $(cat "$T/out")"
		[ ! -e "$T/no.npy" ] || sl_fail "export $2 wrote a file"
	done
	set +e
	"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$2" --alpha 1 --arch 784-16-10 \
	    --epochs 1 --out "$T/no.safetensors" 2>"$T/err"; _rc=$?
	set -e
	sl_check "$_rc -eq 2" "student --store $2: exit $_rc, not 2"
	grep -q "$1" "$T/err" || sl_fail "student --store $2: $(cat "$T/err")"
}
refused "$T/a (rows 0:1000) and $T/a (rows 0:1000) overlap" "$T/a,$T/a"
refused "$T/full (rows 0:3000) and $T/b (rows 1000:3000) overlap" "$T/full,$T/b"
refused "$T/a and $T/f are not parts of one job (the dataset's fingerprint or the shard size differ)" "$T/a,$T/f"
refused "teacher 't' differs between $T/a and $T/g (model, temperature, encoding or views): not parts of one job" "$T/a,$T/g"
set +e; "$BIN/softlabel" export "$T/a,tcp://127.0.0.1:1" --out "$T/no.npy" 2>"$T/err"; rc=$?; set -e
sl_check "$rc -eq 2" "export of an endpoint: exit $rc: $(cat "$T/err")"
grep -q "export reads cache directories, not endpoints" "$T/err" || sl_fail "export of an endpoint: $(cat "$T/err")"
echo "refused with exit 2 by verify, export, serve and the student: overlaps, another dataset, another teacher"
echo "split job: all checks passed"
