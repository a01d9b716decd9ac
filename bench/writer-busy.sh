#!/usr/bin/env bash
# writer-busy.sh - how busy posthorn's single store writer is under one load of
# bench/mta-baseline.sh (smtp-source -> posthorn -> smtp-sink).
#
# Runs the load once and samples, over a window in the middle of it, the
# store writer's busy seconds (posthorn_store_writer_busy_seconds_total: exec =
# running the requests' statements, commit = writing the transaction out and its
# fsync), its commits and requests, and the server process's CPU and write/read
# system calls (/proc/PID/stat and /io). A writer busy near 100% means the single
# writer bounds the load, whatever CPU the machine has left.
#
# Usage, as root from the project root:
#   bench/writer-busy.sh                          # 10 sessions x 10 recipients
#   RCPTS=1 N=20000 bench/writer-busy.sh          # 10 x 1
#   POSTHORN_BIN=/tmp/ph-old bench/writer-busy.sh # another build (A/B: alternate them)
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."
CONC=${CONC:-10} RCPTS=${RCPTS:-10} N=${N:-8000} WINDOW=${WINDOW:-3} SETTLE=${SETTLE:-3.5}
RUN=${BENCH_RUN_DIR:-/var/tmp/posthorn-bench}
HTTP=${POSTHORN_HTTP_PORT:-2580}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

MTAS=posthorn RUNS=1 CONCS=$CONC RCPTS=$RCPTS N=$N "$HERE/mta-baseline.sh" >"$log" 2>&1 &
harness=$!
for _ in $(seq 1 150); do [ -S "$RUN/posthorn-data/admin.sock" ] && break; sleep 0.2; done
sleep "$SETTLE" # past the warm-up messages, into the measured run
pid=$(pgrep -f 'posthorn-data --smtp-listen' | head -1)
[ -n "$pid" ] || { echo "posthorn is not running (see $log)" >&2; wait "$harness"; exit 1; }

sample() { # exec commit commits requests cpu_ticks syscw syscr time
	curl -s "http://127.0.0.1:$HTTP/metrics" | awk '
		/^posthorn_store_writer_busy_seconds_total\{phase="exec"\}/ { e = $2 }
		/^posthorn_store_writer_busy_seconds_total\{phase="commit"\}/ { c = $2 }
		/^posthorn_store_commits_total / { n = $2 }
		/^posthorn_store_write_requests_total / { r = $2 }
		END { printf "%s %s %s %s ", e, c, n, r }'
	awk '{ printf "%d ", $14 + $15 }' "/proc/$pid/stat"
	awk '/^syscw/ { w = $2 } /^syscr/ { r = $2 } END { printf "%d %d ", w, r }' "/proc/$pid/io"
	date +%s.%N
}
read -r e0 c0 n0 r0 t0 w0 rd0 s0 < <(sample)
sleep "$WINDOW"
read -r e1 c1 n1 r1 t1 w1 rd1 s1 < <(sample)
wait "$harness"
result=$(grep -E '^RESULT' "$log" | tail -1)
[ -n "$result" ] || { echo "no result from mta-baseline.sh:" >&2; tail -5 "$log" >&2; exit 1; }
rate=$(sed 's/.*inject_msgs_per_s=\([0-9.]*\).*/\1/' <<<"$result")
awk -v e0="$e0" -v e1="$e1" -v c0="$c0" -v c1="$c1" -v n="$((n1 - n0))" -v r="$((r1 - r0))" \
	-v t="$((t1 - t0))" -v w="$((w1 - w0))" -v rd="$((rd1 - rd0))" -v s0="$s0" -v s1="$s1" \
	-v hz="$(getconf CLK_TCK)" -v rate="$rate" -v conc="$CONC" -v rcpts="$RCPTS" 'BEGIN {
	d = s1 - s0; msgs = rate * d
	printf "conc=%s rcpts=%s accept_msgs_per_s=%.0f writer_busy=%.0f%% (exec %.0f%%, commit %.0f%%) commits_per_s=%.0f requests_per_commit=%.1f process_cpu=%.0f%% writes_per_msg=%.1f reads_per_msg=%.1f\n",
		conc, rcpts, rate, 100 * (e1 - e0 + c1 - c0) / d, 100 * (e1 - e0) / d, 100 * (c1 - c0) / d,
		n / d, (n ? r / n : 0), 100 * t / hz / d, w / msgs, rd / msgs }'
