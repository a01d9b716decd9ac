#!/usr/bin/env bash
# compare.sh - posthorn against Postfix on this machine, in one run.
#
#   smtp-source --> MTA (127.0.0.1) --> smtp-sink (127.0.0.1:2626)
#
# Both MTAs relay everything to the same sink as a smarthost; Postfix fsyncs each message, posthorn
# commits each message durably before its 250. Prints each MTA's acceptance rate (smtp-source got
# 250 for every message) and end-to-end rate (the sink received every message and the queue is
# empty), then posthorn/Postfix ratios. The machine is shared and noisy: compare within one run.
#
# Usage, as root from the project root (installs postfix from Debian if needed):
#   bench/compare.sh                                  # 10 and 50 sessions, 1 and 10 rcpts, 3 runs
#   RUNS=1 CONCS=10 RCPTS=1 N=5000 bench/compare.sh   # quick
# Knobs are those of bench/mta-baseline.sh (a copy of the shared Postfix baseline harness).
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."
export MTAS=${MTAS:-"postfix posthorn"} RUNS=${RUNS:-3} CONCS=${CONCS:-"10 50"} RCPTS=${RCPTS:-"1 10"}
export N=${N:-10000} FSYNC=${FSYNC:-0}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$HERE/mta-baseline.sh" | tee "$out"
echo
echo "==== posthorn / Postfix (medians)"
awk '
/^SUMMARY/ {
	mta = $2; key = $3 " " $4 " " $5
	for (i = 6; i <= NF; i++) { split($i, kv, "="); v[mta, key, kv[1]] = kv[2] }
	keys[key] = 1
}
END {
	for (k in keys) {
		pi = v["posthorn", k, "inject_msgs_per_s"]; fi = v["postfix", k, "inject_msgs_per_s"]
		pe = v["posthorn", k, "e2e_msgs_per_s"];    fe = v["postfix", k, "e2e_msgs_per_s"]
		if (fi > 0 && fe > 0 && pi > 0)
			printf "%s  accept: posthorn %.0f/s postfix %.0f/s ratio %.2fx   end-to-end: posthorn %.0f/s postfix %.0f/s ratio %.2fx\n", k, pi, fi, pi / fi, pe, fe, pe / fe
	}
}' "$out"
