#!/bin/sh
# Finding 7 of issue 15: status past 1 MiB. 4,096 sessions with 128-byte
# worker names under a 128-byte teacher name (about 1.8 MB as JSON): the
# status fits SL_PROTO_MAX_JSON, says it was cut ("truncated", workers
# listed of workers_total, the total exact), and softlabel status (human
# and --json) works.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"
N=4096

# The sessions all come from 127.0.0.1: without the limits per address
# (hostile_peer.sh tests those) one host may hold every slot.
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100 \
    --lease-timeout 600 --max-sessions-per-peer 0 --hello-rate-per-peer 0
sl_bg H $DPY "$ROOT/tests/lib/idle_client.py" hello "$BROKER_EP" $N "$T/stop" 300 \
    long >"$T/h.out" 2>&1
sl_wait_log "$T/h.out" "$N sessions welcomed" 240
sl_status_json "$BROKER_EP" >"$T/st.json" || sl_fail "softlabel status --json failed"
size=$(wc -c <"$T/st.json")
echo "status: $size bytes"
sl_check "$size -le 1048576" "status of $size bytes is over 1 MiB"
sl_check "$(sl_json_get "$T/st.json" "d['workers_total']") -eq $N" "workers_total is not $N"
sl_check "$(sl_json_get "$T/st.json" "1 if d['truncated'] else 0") -eq 1" "not marked truncated"
listed=$(sl_json_get "$T/st.json" "d['workers_listed']")
sl_check "$listed -ge 1" "no worker listed"
sl_check "$listed -eq $(sl_json_get "$T/st.json" "len(d['workers'])")" "workers_listed does not count the list"
sl_check "$(sl_json_get "$T/st.json" "len(d['workers'][0]['name'])") -eq 128" "names were not 128 bytes"
"$BIN/softlabel" status "$BROKER_EP" --timeout 10 >"$T/status.txt" || sl_fail "softlabel status failed"
grep -q "($listed of $N workers listed" "$T/status.txt" || sl_fail "the human status does not say it was cut: $(tail -3 "$T/status.txt")"
touch "$T/stop"
echo "status fits: $listed of $N workers listed in $size bytes"
