#!/bin/sh
# bench_view_bytes - storage of views (issue 12), figures, not thresholds. The
# 10,000 Fashion-MNIST test rows are labeled by the small 784-64-10 teacher
# (one worker) with --views 8 --view-recipe crop=4,flip, once per encoding
# (f32, f16, topk:5), and once without views in f32 as the reference of the
# same run. From softlabel inspect: the record's bytes, LMDB's bytes in use
# and the file's bytes per record (a record is one view of a sample with
# views, one sample without), per sample over all 8 views, and the ratio of
# a view's bytes to a plain record's (its key is 16 bytes instead of 12).
# Processes on 127.0.0.1 with free ports, fresh stores under one mktemp
# directory, every wait bounded, processes ended by pid.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir >/dev/null
T=$SL_TMP
V=8
sl_make_teacher "$T/small.safetensors"
X=$FMNIST/t10k-images-idx3-ubyte.gz

# Label X into $1 with encoding $2 and extra broker options; prints
# "record_bytes records used_bytes file_bytes" from softlabel inspect.
label() { # dir enc broker-extra...
	_d=$1 _e=$2; shift 2
	unset BROKER_PORT
	sl_start_broker "$_d" "$X" "$_d.broker.log" --exit-when-done --nosync "$@"
	sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
	    --model "$T/small.safetensors" --name small --encoding "$_e" \
	    --threads 1 2>>"$_d.worker.log"
	_rc=0; sl_wait_pid "$W" 300 || _rc=$?
	sl_check "$_rc -eq 0" "$_e worker exit $_rc: $(tail -3 "$_d.worker.log")"
	_rc=0; sl_wait_pid "$BROKER_PID" 30 || _rc=$?
	sl_check "$_rc -eq 0" "$_e broker exit $_rc: $(tail -3 "$_d.broker.log")"
	timeout 60 "$BIN/softlabel" inspect "$_d" >"$_d.inspect" ||
	    sl_fail "inspect $_e: $(cat "$_d.inspect")"
	echo "$(sed -n 's/.*, \([0-9]*\) bytes\/record.*/\1/p' "$_d.inspect")" \
	    "$(sed -n 's/^records *\([0-9]*\) labels.*/\1/p' "$_d.inspect")" \
	    "$(sed -n 's/^size *\([0-9]*\) bytes in use.*/\1/p' "$_d.inspect")" \
	    "$(sed -n 's/.*, file \([0-9]*\) bytes;.*/\1/p' "$_d.inspect")"
}

set -- $(label "$T/plain" f32)
sl_check "'$2' = 10000" "the plain cache holds '$2' records"
ref_used=$(awk -v u="$3" -v n="$2" 'BEGIN { print u / n }')
printf '%s\n' "cache bytes per view: 10,000 Fashion-MNIST test rows x $V views (crop=4,flip), 784-64-10 teacher, 10 classes"
printf '  %-14s %8s %14s %14s %16s %12s\n' encoding record "in use/record" "file/record" "in use/sample" "vs plain f32"
awk -v r="$1" -v u="$ref_used" -v n="$2" -v f="$4" 'BEGIN {
	printf "  %-14s %8d %14.1f %14.1f %16.1f %12.2f\n", "f32, no views", r, u, f / n, u, 1
}'
for enc in f32 f16 topk:5; do
	d=$T/views-$(echo "$enc" | tr : -)
	set -- $(label "$d" "$enc" --views $V --view-recipe crop=4,flip --view-seed 1)
	sl_check "'$2' = $((10000 * V))" "$enc: the views cache holds '$2' records"
	grep -q "views $V per sample, recipe crop=4,flip" "$d.inspect" ||
	    sl_fail "inspect $enc: $(cat "$d.inspect")"
	awk -v e="$enc" -v r="$1" -v n="$2" -v u="$3" -v f="$4" -v ref="$ref_used" -v V="$V" 'BEGIN {
		printf "  %-14s %8d %14.1f %14.1f %16.1f %12.2f\n", e " x" V, r, u / n, f / n, u / n * V, (u / n) / ref
	}'
done
echo "(in use: LMDB pages in use; the ratio is a view's bytes in use over a plain f32 record's, same run)"
