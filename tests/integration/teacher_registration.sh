#!/bin/sh
# Findings 1 and 2 of issue 15: who may register a teacher.
#  1. With --teacher real=SHA256 (the operator's list), 300 HELLOs with
#     distinct teacher names are refused and nothing of them reaches the
#     cache; a HELLO for 'real' with another model is refused; a worker
#     whose --name is a typo is refused; the real worker labels, and
#     --exit-when-done exits 0.
#  2. A cache that holds a stray teacher (registered by an open broker,
#     never labeled): with --teacher real, --exit-when-done exits once
#     'real' is done instead of waiting for it forever.
#  3. Open registration (no --teacher) is bounded: --max-teachers 3 admits
#     three new names, refuses the next saying why.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
SHA=$(sha256sum "$T/teacher.safetensors" | cut -d' ' -f1)

# --- 1 --------------------------------------------------------------------------
# 300 HELLOs from one address at once: past --hello-rate-per-peer most
# would be told BUSY before registration is looked at (hostile_peer.sh
# tests that), so the rate is off here.
sl_start_broker "$T/c1" "$T/x.npy" "$T/b1.log" --shard-rows 100 --exit-when-done \
    --teacher "real=$SHA" --hello-rate-per-peer 0
$DPY "$ROOT/tests/lib/stray_teachers.py" "$BROKER_EP" 300 >"$T/s1.out" || sl_fail "stray client"
cat "$T/s1.out"
grep -q "welcomed 0 refused 300" "$T/s1.out" || sl_fail "stray teachers were welcomed"
grep -q "is not one the operator registered" "$T/s1.out" || sl_fail "no clear reason"
$DPY "$ROOT/tests/lib/stray_teachers.py" "$BROKER_EP" 1 "$(printf '%064d' 0)" real >"$T/s1b.out"
grep -q "welcomed 0 refused 1" "$T/s1b.out" || sl_fail "'real' with another model was welcomed"
grep -q "registered by the operator with model" "$T/s1b.out" || sl_fail "no provenance reason: $(cat "$T/s1b.out")"
set +e
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name reel --threads 1 2>"$T/typo.log"; rc=$?
set -e
sl_check "$rc -eq 1" "the typo'd worker: exit $rc, not 1"
sl_bg W1 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w1.log"
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "broker with --teacher real: exit $rc: $(tail -3 "$T/b1.log")"
"$BIN/softlabel" inspect "$T/c1" >"$T/i1.txt"
sl_check "$(grep -c '^teacher ' "$T/i1.txt") -eq 1" "the cache holds other teachers: $(grep '^teacher' "$T/i1.txt")"
grep -q "^teacher 0   real: model sha256 $SHA" "$T/i1.txt" || sl_fail "real is not registered: $(cat "$T/i1.txt")"
BROKER_PORT=

# --- 2 --------------------------------------------------------------------------
sl_start_broker "$T/c2" "$T/x.npy" "$T/b2a.log" --shard-rows 100
$DPY "$ROOT/tests/lib/stray_teachers.py" "$BROKER_EP" 1 >"$T/s2.out"
grep -q "welcomed 1 refused 0" "$T/s2.out" || sl_fail "open broker did not register the stray"
# One writer per cache: neither a second broker nor teacher remove while
# this one runs.
set +e
"$BIN/softlabel-broker" --store "$T/c2" --dataset "$T/x.npy" \
    --bind "tcp://127.0.0.1:$(sl_free_port)" 2>"$T/second.err"; rc=$?
"$BIN/softlabel" teacher remove "$T/c2" stray-0 2>"$T/rm0.err"; rc0=$?
set -e
sl_check "$rc -eq 1" "a second broker on the store: exit $rc, not 1"
grep -q "is written by pid $BROKER_PID softlabel-broker on $BROKER_EP: one writer per cache" \
    "$T/second.err" || sl_fail "second broker: $(cat "$T/second.err")"
sl_check "$rc0 -eq 1" "teacher remove under a running broker: exit $rc0, not 1"
kill "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 30 || true
BROKER_PORT=
cp -r "$T/c2" "$T/c2-stray"  # for the removal below
sl_start_broker "$T/c2" "$T/x.npy" "$T/b2.log" --shard-rows 100 --exit-when-done \
    --teacher real
sl_bg W2 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w2.log"
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "broker with a stray teacher in the cache: exit $rc (did it wait for stray-0?): $(tail -3 "$T/b2.log")"
grep -q "teacher stray-0 (index 0): 0/5 shards done" "$T/b2.log" || sl_fail "the cache did not hold the stray"
BROKER_PORT=
# teacher remove: the stray goes; a teacher with records stays.
"$BIN/softlabel" teacher remove "$T/c2-stray" stray-0 >"$T/rm.out" || sl_fail "teacher remove failed"
"$BIN/softlabel" inspect "$T/c2-stray" >"$T/i2.txt"
sl_check "$(grep -c '^teacher ' "$T/i2.txt") -eq 0" "stray-0 still registered: $(grep '^teacher' "$T/i2.txt")"
set +e
"$BIN/softlabel" teacher remove "$T/c1" real 2>"$T/rm1.err"; rc=$?
set -e
sl_check "$rc -eq 1" "removing a teacher with records: exit $rc, not 1"
grep -q "has records in the cache" "$T/rm1.err" || sl_fail "no reason: $(cat "$T/rm1.err")"
"$BIN/softlabel" verify "$T/c1" >/dev/null || sl_fail "c1 no longer verifies"

# --- 3 --------------------------------------------------------------------------
sl_start_broker "$T/c3" "$T/x.npy" "$T/b3.log" --shard-rows 100 --max-teachers 3
$DPY "$ROOT/tests/lib/stray_teachers.py" "$BROKER_EP" 5 >"$T/s3.out"
cat "$T/s3.out"
grep -q "welcomed 3 refused 2" "$T/s3.out" || sl_fail "--max-teachers 3 did not bound open registration"
grep -q "the cache holds 3 teachers (--max-teachers 3)" "$T/s3.out" || sl_fail "no clear reason"
set +e
"$BIN/softlabel-broker" --store "$T/c4" --dataset "$T/x.npy" --teacher "a,a" 2>"$T/dup.err"; rc=$?
set -e
sl_check "$rc -eq 2" "--teacher a,a: exit $rc, not 2"
echo "teacher registration: the operator's list holds; open registration bounded"
