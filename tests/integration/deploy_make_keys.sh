#!/bin/sh
# deploy/make-keys.sh: the broker's, the probe's and the workers' key pairs
# and the allow-list (probe and workers, never the broker), secret keys mode
# 0600; a second run keeps every key byte for byte; more names add pairs;
# bad names, half a pair, a stale allow-list copy, and no softlabel program
# each stop it with status 1 and a message; no argument is a usage error.
# (deploy_kubernetes.sh uses its keys for real.)
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
MK=$ROOT/deploy/make-keys.sh
K=$T/keys
export SOFTLABEL_BIN="$BIN"

refused() { # pattern command...: must exit 1 with pattern on stderr
	_p=$1; shift
	set +e; "$@" >"$T/out" 2>"$T/err"; _rc=$?; set -e
	sl_check "$_rc -eq 1" "'$*': exit $_rc, want 1: $(cat "$T/err")"
	grep -qE "$_p" "$T/err" || sl_fail "'$*': no '$_p' in: $(cat "$T/err")"
	echo "refused: $(cat "$T/err")"
}

sh "$MK" "$K" >"$T/first" || sl_fail "make-keys failed"
cat "$T/first"
for n in broker probe workers; do
	sl_check "$(stat -c %a "$K/$n.key") = 600" "$n.key mode $(stat -c %a "$K/$n.key")"
	sl_check "$(stat -c %s "$K/$n.pub") -eq 41" "$n.pub is not one key"
done
sl_check "'$(cd "$K/allow" && echo *)' = 'probe.pub workers.pub'" "allow/ holds: $(ls "$K/allow")"
for n in probe workers; do
	cmp -s "$K/$n.pub" "$K/allow/$n.pub" || sl_fail "allow/$n.pub differs from $n.pub"
done
# Again: nothing changes.
cp -r "$K" "$T/before"
sh "$MK" "$K" >"$T/second" || sl_fail "second run failed"
sl_check "$(sl_count "$T/second" '^kept ') -eq 3" "second run: $(cat "$T/second")"
if grep -qE '^(created|allowed) ' "$T/second"; then sl_fail "second run wrote: $(cat "$T/second")"; fi
diff -r "$T/before" "$K" >/dev/null || sl_fail "a second run changed the keys"

# More workers by name.
sh "$MK" "$K" w1 w2 >"$T/third" || sl_fail "adding workers failed"
sl_check "$(sl_count "$T/third" '^created ') -eq 2" "adding workers: $(cat "$T/third")"
sl_check "'$(cd "$K/allow" && echo *)' = 'probe.pub w1.pub w2.pub workers.pub'" "allow/ holds: $(ls "$K/allow")"
cmp -s "$T/before/broker.key" "$K/broker.key" || sl_fail "adding workers changed the broker key"

refused "worker name 'broker' is taken" sh "$MK" "$K" broker
refused "worker name 'a/b': use letters" sh "$MK" "$K" a/b
rm "$K/w2.pub"
refused "w2.key exists without w2.pub" sh "$MK" "$K" w2
"$BIN/softlabel" keygen "$T/other" >/dev/null
cp "$T/other.pub" "$K/allow/w1.pub"
refused "allow/w1.pub differs from .*w1.pub" sh "$MK" "$K" w1
refused "SOFTLABEL_BIN=/nonexistent: no softlabel program there" \
    env SOFTLABEL_BIN=/nonexistent sh "$MK" "$T/k2"
refused "softlabel not found on PATH" env -u SOFTLABEL_BIN PATH=/usr/bin:/bin sh "$MK" "$T/k3"
set +e; sh "$MK" 2>/dev/null; rc=$?; set -e
sl_check "$rc -eq 2" "no argument: exit $rc, want 2"
echo "deploy_make_keys: all checks passed"
