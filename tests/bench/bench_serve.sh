#!/bin/sh
# bench_serve - the read service on loopback (issue 13), figures not
# thresholds: samples/s that one remote reader (sl_reader over
# `softlabel serve`) gets of 10-class f32 records, against a local read of
# the same cache through the same interface in the same run (rounds
# alternate; medians). Goal: >= 500k samples/s for the range walk.
# The machine has 2 cores shared by server, client and anything else
# running: read the ratio, not the absolute figure.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir >/dev/null
T=$SL_TMP
ROWS=${BENCH_SERVE_ROWS:-1000000}
ROUNDS=${BENCH_ROUNDS:-3}
"$BUILD/bench/bench_reader" make "$T/cache" "$ROWS" || sl_fail "making the cache"
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
sl_bg SPID "$BIN/softlabel" serve "$T/cache" --bind "$EP" 2>>"$T/serve.log"
sl_wait_log "$T/serve.log" " $SPID softlabel-serve INFO ready" 30
"$BUILD/bench/bench_reader" read "$T/cache" "$EP" "$ROUNDS" ||
    sl_fail "bench_reader: $(tail -2 "$T/serve.log")"
kill -TERM "$SPID"
sl_wait_pid "$SPID" 20 || sl_fail "serve did not stop"
