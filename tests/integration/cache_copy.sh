#!/bin/sh
# softlabel copy: a compacted, consistent copy of a cache the broker is
# writing. Two copies taken while one slow worker labels; each verifies,
# holds only whole shards, and every record and shard entry in it equals the
# final cache's. An existing destination is refused and left alone, a failed
# copy leaves nothing, and bad usage exits 2.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
ROWS=30000 SR=500 NS=60
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" $ROWS "$T/x.npy"
sl_make_big_teacher "$T/teacher.safetensors"
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows $SR --exit-when-done
# One slow worker: small batches on one thread, one shard at a time.
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 --batch 16 --credit 1 2>"$T/w.log"
sl_wait_log "$T/broker.log" "teacher big registered" 30

done_shards() { # cache
	"$BIN/softlabel" inspect "$1" >"$T/i" 2>&1 || true
	sed -n "s/.*big: .* \([0-9]*\)\/$NS shards done.*/\1/p" "$T/i"
}
wait_done() { # at-least
	_i=0
	while :; do
		_d=$(done_shards "$T/cache")
		[ -n "$_d" ] && [ "$_d" -ge "$1" ] && return 0
		_i=$((_i + 1)); [ "$_i" -gt 1200 ] && sl_fail "labeling does not reach $1 shards"
		sleep 0.1
	done
}

# --- two copies of the live cache ----------------------------------------------------------
wait_done 2
"$BIN/softlabel" copy "$T/cache" "$T/c1" >"$T/copy1.out" 2>"$T/copy1.err" ||
    sl_fail "copy 1: $(cat "$T/copy1.err")"
kill -0 "$BROKER_PID" 2>/dev/null || sl_fail "the broker ended before the first copy was taken"
cat "$T/copy1.out"
grep -q "^copied $T/cache to $T/c1: [0-9]* labels" "$T/copy1.out" || sl_fail "copy 1 said: $(cat "$T/copy1.out")"
d1=$(done_shards "$T/c1")
[ -n "$d1" ] || sl_fail "inspect of the first copy: $(cat "$T/i")"
sl_check "$d1 -ge 2 -a $d1 -lt $NS" "the first copy holds $d1 of $NS shards"
[ ! -e "$T/c1/writer.lock" ] || sl_fail "the copy has the source's writer.lock"
wait_done $((d1 + 2))
"$BIN/softlabel" copy "$T/cache" "$T/c2" >"$T/copy2.out" 2>"$T/copy2.err" ||
    sl_fail "copy 2: $(cat "$T/copy2.err")"
d2=$(done_shards "$T/c2")
sl_check "$d2 -gt $d1" "the second copy ($d2 shards) is not newer than the first ($d1)"
echo "copies of the live cache: $d1 and $d2 of $NS shards done"

# --- refusals: nothing overwritten, nothing left behind ------------------------------------
before=$(md5sum <"$T/c1/data.mdb")
set +e
"$BIN/softlabel" copy "$T/cache" "$T/c1" >/dev/null 2>"$T/e1"; rc1=$?
echo keep >"$T/afile"
"$BIN/softlabel" copy "$T/cache" "$T/afile" >/dev/null 2>"$T/e2"; rc2=$?
"$BIN/softlabel" copy "$T/cache" "$T/nodir/c3" >/dev/null 2>"$T/e3"; rc3=$?
"$BIN/softlabel" copy "$T/nocache" "$T/c4" >/dev/null 2>"$T/e4"; rc4=$?
"$BIN/softlabel" copy "$T/cache" >/dev/null 2>"$T/e5"; rc5=$?
set -e
sl_check "$rc1 -eq 1" "copy onto an existing copy: exit $rc1"
grep -q "$T/c1 exists: a copy goes to a new directory" "$T/e1" || sl_fail "copy onto c1: $(cat "$T/e1")"
[ "$(md5sum <"$T/c1/data.mdb")" = "$before" ] || sl_fail "a refused copy changed $T/c1"
sl_check "$rc2 -eq 1" "copy onto a file: exit $rc2"
[ "$(cat "$T/afile")" = keep ] || sl_fail "a refused copy changed a file"
sl_check "$rc3 -eq 1" "copy into a missing directory: exit $rc3"
grep -q "create $T/nodir/c3.copy-[0-9]*.tmp: No such file or directory" "$T/e3" ||
    sl_fail "copy into a missing directory: $(cat "$T/e3")"
sl_check "$rc4 -eq 1" "copy of no cache: exit $rc4"
[ ! -e "$T/c4" ] || sl_fail "copy of no cache made $T/c4"
grep -q "no cache at $T/nocache" "$T/e4" || sl_fail "copy of no cache: $(cat "$T/e4")"
sl_check "$rc5 -eq 2" "copy without DEST: exit $rc5, not 2"
grep -q "copy takes STORE and DEST" "$T/e5" || sl_fail "copy without DEST: $(cat "$T/e5")"
left=$(ls -d "$T"/*.tmp 2>/dev/null || true)
[ -z "$left" ] || sl_fail "temporary directories left: $left"
echo "refusals: existing directory or file kept, missing parent, no cache, usage (2); nothing left"

# --- after the labeling: each copy is a snapshot of the final cache ------------------------
set +e; sl_wait_pid "$BROKER_PID" 600; rc=$?; set -e
sl_check "$rc -eq 0" "broker: exit $rc: $(tail -2 "$T/broker.log")"
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q ok || sl_fail "verify of the final cache"
for c in c1 c2; do
	"$BIN/softlabel" verify "$T/$c" >"$T/v-$c" || sl_fail "verify $c: $(cat "$T/v-$c")"
	grep -q "teacher big: [0-9]* records in [0-9]*/$NS done shards checked, 0 problems" "$T/v-$c" ||
	    sl_fail "verify $c: $(cat "$T/v-$c")"
	$DPY "$ROOT/tests/lib/copy_check.py" "$T/$c" "$T/cache" $SR $ROWS ||
	    sl_fail "$c is not a snapshot of the final cache"
done
# A copy of a finished cache is complete and no larger than the file that
# grew under many commits (compact: free pages left out).
"$BIN/softlabel" copy "$T/cache" "$T/c5" >"$T/copy5.out" || sl_fail "copy of the finished cache"
cat "$T/copy5.out"
cb=$(sed -n 's/.* inputs; \([0-9]*\) bytes (the source.s file: \([0-9]*\))$/\1/p' "$T/copy5.out")
sb=$(sed -n 's/.* inputs; \([0-9]*\) bytes (the source.s file: \([0-9]*\))$/\2/p' "$T/copy5.out")
sl_check "-n \"$cb\" -a -n \"$sb\"" "no sizes in: $(cat "$T/copy5.out")"
sl_check "$cb -le $sb" "the compact copy ($cb bytes) is larger than its source ($sb)"
[ "$(stat -c %s "$T/c5/data.mdb")" -eq "$cb" ] || sl_fail "the copy's data.mdb is not $cb bytes"
$DPY "$ROOT/tests/lib/copy_check.py" "$T/c5" "$T/cache" $SR $ROWS >"$T/cc5" || sl_fail "c5: $(cat "$T/cc5")"
grep -q "copy: $ROWS records in $NS done shards" "$T/cc5" || sl_fail "c5 is not whole: $(cat "$T/cc5")"
echo "cache copy: all checks passed"
