#!/usr/bin/env bash
# mta-baseline.sh - end-to-end loopback baselines for an outbound MTA (posthorn). Copied from the
# team's shared Postfix baseline harness (shared/bench/postfix-baseline.sh); bench/compare.sh drives it.
#
#   smtp-source --> MTA under test (127.0.0.1:<port>) --> smtp-sink (127.0.0.1:2626)
#
# For each MTA and each (sessions, recipients) pair it injects N messages of SIZE bytes with
# Postfix's smtp-source and measures
#   inject  = N / time until smtp-source got "250" for every message (MTA accepted & queued)
#   e2e     = N / time until the sink has received all N messages AND the MTA queue is empty
#   mta_cpu_ms_per_msg = CPU (user+sys) the MTA's processes used, per message (cgroup v2)
#   other_cpu_pct      = share of the machine's CPU used by processes that are NOT this
#                        benchmark during the run (the machine is shared: a noise indicator)
# Each point runs RUNS times (default 3); the summary prints the median.
#
# MTAs (MTAS="sink postfix exim opensmtpd"):
#   sink      smtp-source straight into smtp-sink: ceiling of the loopback SMTP path.
#   postfix   Debian postfix, private instance (bench/postfix/*.cf.in), listens 127.0.0.1:2525.
#   exim      Debian exim4-daemon-light 4.96, unpacked privately (it conflicts with postfix),
#             bench/exim/exim.conf.in, listens 127.0.0.1:2527.
#   opensmtpd Debian opensmtpd 6.8, unpacked privately, bench/opensmtpd/smtpd.conf.in,
#             listens 127.0.0.1:2528; runs in a private mount namespace whose resolv.conf
#             says "lookup file" (no DNS). NOTE: OpenSMTPD does not fsync before "250".
#   posthorn  the project: built from ./cmd/posthorn when run from the project's root (or POSTHORN_BIN),
#             `serve --smarthost` to the sink with --trusted-networks 127.0.0.0/8, listens 127.0.0.1:2529.
#             Example: MTAS="postfix posthorn" RUNS=1 CONCS=10 RCPTS=1 N=5000 ../shared/bench/postfix-baseline.sh
# All of them relay everything to the sink as smarthost; no DNS; fsync at each MTA's default.
#
# Usage (as root; installs what it needs from Debian):
#   bench/postfix-baseline.sh                       # everything, ~70 min on 2 cores
#   MTAS="sink postfix" CONCS=10 RCPTS=1 RUNS=1 N=2000 bench/postfix-baseline.sh   # quick
# Knobs (env): MTAS N N_SINK N_POSTFIX N_EXIM N_OPENSMTPD SIZE RUNS CONCS RCPTS CONN
#   (CONN=reuse: smtp-source -d, many messages per session; CONN=new: one session per
#   message) WARMUP INJECT_TIMEOUT DRAIN_TIMEOUT FSYNC(=1 runs the fsync probe)
#   FSYNC_DIR BENCH_RUN_DIR(state, queues, logs; default /var/tmp/posthorn-bench)
#   SINK_PORT POSTFIX_PORT EXIM_PORT OPENSMTPD_PORT
# Output: progress on stderr; RESULT lines (one per run) and SUMMARY lines on stdout, also
# appended to $BENCH_RUN_DIR/results.tsv. Every process it starts is stopped by PID on exit.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MTAS=${MTAS:-"sink postfix exim opensmtpd"}
N=${N:-20000}
N_SINK=${N_SINK:-$N}
N_POSTFIX=${N_POSTFIX:-$N}
N_EXIM=${N_EXIM:-2000}          # Exim forks+execs per message: ~20-40 msg/s on this machine
N_POSTHORN=${N_POSTHORN:-$N}
N_OPENSMTPD=${N_OPENSMTPD:-1000} # OpenSMTPD 6.8 relays ~15-20 msg/s here (latency-bound)
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
CONCS=${CONCS:-"10 50"}
RCPTS=${RCPTS:-"1 10"}
CONN=${CONN:-reuse}
WARMUP=${WARMUP:-200}
INJECT_TIMEOUT=${INJECT_TIMEOUT:-1200}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-1200}
FSYNC=${FSYNC:-1}
FSYNC_DIR=${FSYNC_DIR:-/tmp}
RUN=${BENCH_RUN_DIR:-/var/tmp/posthorn-bench}
SINK_PORT=${SINK_PORT:-2626}
POSTFIX_PORT=${POSTFIX_PORT:-2525}
EXIM_PORT=${EXIM_PORT:-2527}
OPENSMTPD_PORT=${OPENSMTPD_PORT:-2528}
POSTHORN_PORT=${POSTHORN_PORT:-2529}
POSTHORN_HTTP_PORT=${POSTHORN_HTTP_PORT:-2580}
FROM=sender@example.org
TO=rcpt@example.com
HELO=bench.client
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
NCPU=$(nproc)

log() { printf '%s [bench] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
[ "${BASH_VERSINFO[0]}" -ge 5 ] || die "needs bash >= 5 (EPOCHREALTIME)"

mkdir -p "$RUN/log" || die "cannot create $RUN"
RESULTS=$RUN/results.tsv

# ---------------------------------------------------------------- process bookkeeping
SINK_PID='' SRC_PID='' EXIM_PID='' OSMTPD_PID='' POSTFIX_STARTED=''
CG='' # cgroup v2 dir of this run, with children mta/ and harness/

alive() { # alive PID: exists and is not a zombie
	local k v
	[ -r "/proc/$1/status" ] || return 1
	while read -r k v; do [ "$k" = State: ] && { [ "${v%% *}" != Z ]; return; }; done <"/proc/$1/status" 2>/dev/null
	return 1
}
stop_pid() { # stop_pid PID NAME: TERM, wait up to 10s, then KILL
	local pid=$1 name=$2 i
	[ -n "$pid" ] || return 0
	alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		nap 0.1
	done
	if alive "$pid"; then
		log "$name (pid $pid) ignored TERM; sending KILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}
# After an MTA is stopped, wait for every process left in its cgroup (forked delivery
# agents) to end; KILL, by PID, whatever is still there after 15 s.
cg_drain() {
	[ -n "$CG" ] || return 0
	local i pid left
	for ((i = 0; i < 150; i++)); do
		left=$(cat "$CG/$1/cgroup.procs" 2>/dev/null)
		[ -z "$left" ] && return 0
		nap 0.1
	done
	for pid in $left; do log "killing leftover pid $pid in cgroup $1"; kill -KILL "$pid" 2>/dev/null; done
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$SRC_PID" smtp-source; SRC_PID=''
	postfix_stop
	stop_pid "$EXIM_PID" exim; EXIM_PID=''
	stop_pid "$OSMTPD_PID" opensmtpd; OSMTPD_PID=''
	stop_pid "${POSTHORN_PID:-}" posthorn; POSTHORN_PID=''
	stop_pid "$SINK_PID" smtp-sink; SINK_PID=''
	cg_drain mta; cg_drain harness
	[ -n "${SLEEP_FD:-}" ] && exec {SLEEP_FD}>&-
	cg_remove
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# A sleep without fork/exec (process creation costs ~15 ms on these VMs).
mkfifo "$RUN/.nap.$$" && exec {SLEEP_FD}<>"$RUN/.nap.$$" && rm -f "$RUN/.nap.$$"
nap() { read -r -t "$1" -u "$SLEEP_FD" _ || true; }

# ---------------------------------------------------------------- CPU accounting (cgroup v2)
cg_setup() {
	local root
	root=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
	# remove empty cgroups left by earlier runs that were SIGKILLed (their pid is gone)
	local d
	for d in "$root"/posthorn-bench-*; do
		[ -d "$d" ] || continue
		kill -0 "${d##*-}" 2>/dev/null && continue
		rmdir "$d/mta" "$d/harness" "$d" 2>/dev/null && log "removed stale cgroup $d"
	done
	if [ -n "$root" ] && mkdir -p "$root/posthorn-bench-$$/mta" "$root/posthorn-bench-$$/harness" 2>/dev/null &&
		[ -r "$root/posthorn-bench-$$/mta/cpu.stat" ]; then
		CG=$root/posthorn-bench-$$
		log "CPU accounting: cgroup v2 at $CG"
	else
		CG=''
		log "CPU accounting unavailable (no writable cgroup v2); cpu columns will be NA"
	fi
}
cg_remove() {
	[ -n "$CG" ] || return 0
	local d pid
	for d in mta harness; do # anything left (should be nothing) goes back to the root
		if [ -r "$CG/$d/cgroup.procs" ]; then
			while read -r pid; do echo "$pid" >"$CG/../cgroup.procs" 2>/dev/null; done <"$CG/$d/cgroup.procs"
		fi
		rmdir "$CG/$d" 2>/dev/null
	done
	rmdir "$CG" 2>/dev/null
	CG=''
}
cg_join() { [ -n "$CG" ] && echo "$BASHPID" >"$CG/$1/cgroup.procs"; return 0; } # in a subshell
cg_usec() { # total CPU usec of a cgroup, or 0
	local k v
	[ -n "$CG" ] || { echo 0; return; }
	while read -r k v; do [ "$k" = usage_usec ] && { echo "$v"; return; }; done <"$CG/$1/cpu.stat"
	echo 0
}
HZ=$(getconf CLK_TCK)
host_busy_usec() { # all CPUs, busy time (everything but idle+iowait), in usec
	local cpu u n s i w q sq st rest
	read -r cpu u n s i w q sq st rest </proc/stat
	echo $(((u + n + s + q + sq + st) * 1000000 / HZ))
}

# Disk cache flushes (field 16 of /sys/class/block/DEV/stat) on the device holding $RUN
# and /var/spool: an fsync() on ext4 ends in a flush, so flushes per message shows whether
# (and how much) an MTA syncs before "250". Other tenants' I/O is counted too.
DISK_STAT=''
disk_setup() {
	local src name
	src=$(findmnt -n -o SOURCE --target "$RUN" 2>/dev/null)
	name=${src##*/}
	[ -n "$name" ] && [ -r "/sys/class/block/$name/stat" ] && DISK_STAT=/sys/class/block/$name/stat
	[ -n "$DISK_STAT" ] && log "disk flush accounting: $DISK_STAT ($src)" || log "disk flush accounting unavailable"
}
disk_flushes() {
	local -a f
	[ -n "$DISK_STAT" ] || { echo 0; return; }
	read -r -a f <"$DISK_STAT"
	echo "${f[15]:-0}"
}

# ---------------------------------------------------------------- install / prepare
APT_UPDATED=''
apt_install() {
	if [ -z "$APT_UPDATED" ]; then
		apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
		--no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}

ensure_base() {
	local need=()
	if ! command -v postfix >/dev/null || [ ! -x "$SMTP_SOURCE" ] || [ ! -x "$SMTP_SINK" ]; then
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
		echo "postfix postfix/mailname string bench.localdomain" | debconf-set-selections
		need+=(postfix)
	fi
	command -v swaks >/dev/null || need+=(swaks)
	command -v unshare >/dev/null || need+=(util-linux)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]}"
		apt_install "${need[@]}"
	fi
	[ -x "$SMTP_SOURCE" ] && [ -x "$SMTP_SINK" ] || die "smtp-source/smtp-sink missing"
}

# Debian's exim4 and opensmtpd both conflict with postfix (mail-transport-agent), so their
# .debs are fetched with apt-get download and unpacked into $RUN; their libraries are
# ordinary packages and are apt-installed.
unpack_deb() { # unpack_deb DESTDIR PKG...
	local dest=$1 p f
	shift
	mkdir -p "$RUN/debs" "$dest"
	for p in "$@"; do
		f=$(ls "$RUN"/debs/"${p}"_*.deb 2>/dev/null | head -1)
		if [ -z "$f" ]; then
			[ -n "$APT_UPDATED" ] || { apt-get -o DPkg::Lock::Timeout=600 update -qq >&2; APT_UPDATED=1; }
			(cd "$RUN/debs" && apt-get download "$p" >&2 2>/dev/null) || die "apt-get download $p failed"
			f=$(ls "$RUN"/debs/"${p}"_*.deb | head -1)
		fi
		dpkg-deb -x "$f" "$dest" || die "dpkg-deb -x $f failed"
	done
}

ensure_exim() {
	EXIM_BIN=$RUN/exim-root/usr/sbin/exim4
	if [ ! -x "$EXIM_BIN" ]; then
		log "preparing exim4-daemon-light (unpacked, not installed)"
		apt_install libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0 libcrypt1
		unpack_deb "$RUN/exim-root" exim4-daemon-light exim4-base
	fi
	getent passwd Debian-exim >/dev/null ||
		useradd --system --user-group --home-dir /var/spool/exim4 --no-create-home \
			--shell /usr/sbin/nologin Debian-exim || die "cannot create user Debian-exim"
	ldd "$EXIM_BIN" | grep -q 'not found' && die "exim4 has missing libraries: $(ldd "$EXIM_BIN" | grep 'not found')"
	return 0
}

ensure_opensmtpd() {
	OSMTPD_BIN=$RUN/osmtpd-root/usr/sbin/smtpd
	if dpkg-query -W -f '${Status}' opensmtpd 2>/dev/null | grep -q 'ok installed'; then
		die "a real opensmtpd package is installed; refusing to use its /var/spool/smtpd"
	fi
	if [ ! -x "$OSMTPD_BIN" ]; then
		log "preparing opensmtpd (unpacked, not installed)"
		apt_install libdb5.3 libevent-2.1-7 libssl3 libpam0g zlib1g libcrypt1
		unpack_deb "$RUN/osmtpd-root" opensmtpd
	fi
	local u
	for u in opensmtpd opensmtpq; do
		getent group "$u" >/dev/null || groupadd --system "$u"
		id "$u" >/dev/null 2>&1 || useradd --system --gid "$u" --home-dir /var/lib/opensmtpd/empty \
			--no-create-home --shell /usr/sbin/nologin "$u" || die "cannot create user $u"
	done
	mkdir -p /var/lib/opensmtpd/empty
	ldd "$OSMTPD_BIN" | grep -q 'not found' && die "smtpd has missing libraries"
	return 0
}

# Is nothing listening on 127.0.0.1:PORT (or a wildcard address)? Other tenants may listen
# on other loopback addresses with the same port; those do not conflict.
port_free() {
	! ss -ltnH "sport = :$1" 2>/dev/null | awk '{ print $4 }' |
		grep -qE "^(127\.0\.0\.1|0\.0\.0\.0|\*|\[::\]|\[::ffff:127\.0\.0\.1\]):$1\$"
}
wait_port() { # wait_port PORT SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		port_free "$1" || return 0
		nap 0.1
	done
	return 1
}

# ---------------------------------------------------------------- the sink
SINK_OUT=$RUN/sink.out
SINK_FD='' SINK_BUF='' SINK_COUNT=0
sink_start() {
	port_free "$SINK_PORT" || die "port $SINK_PORT is busy"
	: >"$SINK_OUT"
	(cg_join harness; exec "$SMTP_SINK" -c -u postfix "127.0.0.1:$SINK_PORT" 1000) >"$SINK_OUT" 2>"$RUN/log/sink.err" &
	SINK_PID=$!
	wait_port "$SINK_PORT" 10 || die "smtp-sink did not start: $(cat "$RUN/log/sink.err")"
	exec {SINK_FD}<"$SINK_OUT"
	SINK_BUF='' SINK_COUNT=0
}
sink_stop() {
	[ -n "$SINK_FD" ] && exec {SINK_FD}<&-
	SINK_FD=''
	stop_pid "$SINK_PID" smtp-sink
	SINK_PID=''
}
# smtp-sink -c writes "sess=N quit=N mesg=N\r" after every message; read what is new
# (no fork) and keep the last complete counter in SINK_COUNT.
sink_poll() {
	local chunk last
	while IFS= read -r -N 65536 -u "$SINK_FD" chunk || [ -n "$chunk" ]; do
		SINK_BUF+=$chunk
		[ ${#chunk} -lt 65536 ] && break
		chunk=''
	done
	case $SINK_BUF in *$'\r'*) ;; *) return 0 ;; esac
	last=${SINK_BUF%$'\r'*}
	last=${last##*$'\r'}
	SINK_BUF=${SINK_BUF##*$'\r'}
	[[ $last =~ mesg=([0-9]+) ]] && SINK_COUNT=${BASH_REMATCH[1]}
	return 0
}

# ---------------------------------------------------------------- Postfix
PF_CONF=$RUN/postfix-etc
PF_SPOOL=$RUN/postfix-spool
postfix_start() {
	port_free "$POSTFIX_PORT" || die "port $POSTFIX_PORT is busy"
	rm -rf "$PF_CONF" "$PF_SPOOL"
	mkdir -p "$PF_CONF" "$PF_SPOOL" "$RUN/postfix-data" "$RUN/log"
	: >"$RUN/log/postfix.log" # one run's log only (20k messages log ~40 MB)
	chown postfix "$RUN/postfix-data"
	sed -e "s|@QUEUE_DIR@|$PF_SPOOL|; s|@DATA_DIR@|$RUN/postfix-data|; s|@SINK_PORT@|$SINK_PORT|; s|@LOG_FILE@|$RUN/log/postfix.log|" \
		"$HERE/postfix/main.cf.in" >"$PF_CONF/main.cf"
	sed -e "s|@LISTEN_PORT@|$POSTFIX_PORT|" "$HERE/postfix/master.cf.in" >"$PF_CONF/master.cf"
	postfix -c "$PF_CONF" check >&2 || die "postfix check failed"
	(cg_join mta; exec postfix -c "$PF_CONF" start) >&2 || die "postfix start failed (see $RUN/log/postfix.log)"
	POSTFIX_STARTED=1
	wait_port "$POSTFIX_PORT" 20 || die "postfix is not listening on $POSTFIX_PORT"
}
postfix_stop() {
	[ -n "$POSTFIX_STARTED" ] || return 0
	local pid
	pid=$(tr -dc 0-9 <"$PF_SPOOL/pid/master.pid" 2>/dev/null)
	postfix -c "$PF_CONF" stop >/dev/null 2>&1
	[ -n "$pid" ] && stop_pid "$pid" postfix-master
	POSTFIX_STARTED=''
}
postfix_queue_empty() { postqueue -c "$PF_CONF" -p 2>/dev/null | grep -q '^Mail queue is empty'; }

# ---------------------------------------------------------------- Exim
EX_CONF=$RUN/exim-etc/exim.conf
EX_SPOOL=$RUN/exim-spool
exim_start() {
	port_free "$EXIM_PORT" || die "port $EXIM_PORT is busy"
	rm -rf "$EX_SPOOL" "$RUN/exim-etc" "$RUN/exim-log"
	mkdir -p "$EX_SPOOL" "$RUN/exim-etc" "$RUN/exim-log"
	chown Debian-exim:Debian-exim "$EX_SPOOL" "$RUN/exim-log"
	chmod 750 "$EX_SPOOL"
	sed -e "s|@EXIM_BIN@|$EXIM_BIN|; s|@SPOOL_DIR@|$EX_SPOOL|; s|@LOG_DIR@|$RUN/exim-log|; s|@PID_FILE@|$EX_SPOOL/exim.pid|; s|@LISTEN_PORT@|$EXIM_PORT|; s|@SINK_PORT@|$SINK_PORT|" \
		"$HERE/exim/exim.conf.in" >"$EX_CONF"
	chmod 644 "$EX_CONF"
	# Debian's exim4 trusts the -C files listed in /etc/exim4/trusted_configs; listing ours
	# lets the re-exec'd delivery processes keep privilege exactly as in a normal install
	# (otherwise: "exim user lost privilege for using -C option" on every delivery).
	local tc=/etc/exim4/trusted_configs
	if [ ! -e "$tc" ] || grep -q '^# posthorn-bench' "$tc"; then
		mkdir -p /etc/exim4
		printf '# posthorn-bench: written by bench/postfix-baseline.sh\n%s\n' "$EX_CONF" >"$tc"
		chmod 644 "$tc"
	else
		log "exim: $tc exists and is not ours; running with a non-trusted -C config"
	fi
	"$EXIM_BIN" -C "$EX_CONF" -bV >/dev/null || die "exim config check failed"
	# -bdf: daemon in the foreground (our child, so we hold its PID); -q1m: queue runner.
	(cg_join mta; exec "$EXIM_BIN" -C "$EX_CONF" -bdf -q1m) >"$RUN/log/exim.out" 2>&1 &
	EXIM_PID=$!
	wait_port "$EXIM_PORT" 20 || die "exim is not listening: $(cat "$RUN/log/exim.out")"
}
exim_stop() { stop_pid "$EXIM_PID" exim; EXIM_PID=''; }
exim_queue_empty() { [ "$("$EXIM_BIN" -C "$EX_CONF" -bpc 2>/dev/null)" = 0 ]; }

# ---------------------------------------------------------------- OpenSMTPD
OS_CONF=$RUN/osmtpd-etc/smtpd.conf
OS_SPOOL=/var/spool/smtpd # compiled in
opensmtpd_start() {
	port_free "$OPENSMTPD_PORT" || die "port $OPENSMTPD_PORT is busy"
	rm -rf "$RUN/osmtpd-etc" "$OS_SPOOL"
	mkdir -p "$RUN/osmtpd-etc"
	sed -e "s|@LISTEN_PORT@|$OPENSMTPD_PORT|; s|@SINK_PORT@|$SINK_PORT|" \
		"$HERE/opensmtpd/smtpd.conf.in" >"$OS_CONF"
	cp "$HERE/opensmtpd/resolv.conf" "$RUN/osmtpd-etc/resolv.conf"
	"$OSMTPD_BIN" -n -f "$OS_CONF" >&2 || die "opensmtpd config check failed"
	# Private mount namespace: its resolv.conf says "lookup file", so no DNS at all.
	(cg_join mta; exec unshare --mount --propagation private sh -c \
		"mount --bind '$RUN/osmtpd-etc/resolv.conf' /etc/resolv.conf && exec '$OSMTPD_BIN' -d -f '$OS_CONF'") \
		>"$RUN/log/opensmtpd.log" 2>&1 &
	OSMTPD_PID=$!
	wait_port "$OPENSMTPD_PORT" 20 || die "opensmtpd is not listening: $(cat "$RUN/log/opensmtpd.log")"
}
opensmtpd_stop() { stop_pid "$OSMTPD_PID" opensmtpd; OSMTPD_PID=''; }
opensmtpd_queue_empty() {
	[ -z "$(find "$OS_SPOOL/queue" "$OS_SPOOL/incoming" -type f 2>/dev/null | head -1)" ]
}

# ---------------------------------------------------------------- posthorn (the project under test)
# POSTHORN_BIN: the built binary; when unset and the current directory is a checkout with
# cmd/posthorn, it is built there. Relays everything to the sink as a smarthost and trusts loopback
# clients (smtp-source does not authenticate), like the Postfix instance above.
PH_DATA=$RUN/posthorn-data
POSTHORN_PID=''
posthorn_bin() {
	if [ -z "${POSTHORN_BIN:-}" ]; then
		[ -d cmd/posthorn ] || die "posthorn: set POSTHORN_BIN or run from the project's checkout"
		log "posthorn: building ./cmd/posthorn"
		go build -o "$RUN/posthorn" ./cmd/posthorn || die "posthorn: build failed"
		POSTHORN_BIN=$RUN/posthorn
	fi
	[ -x "$POSTHORN_BIN" ] || die "posthorn: $POSTHORN_BIN is not executable"
}
posthorn_start() {
	posthorn_bin
	port_free "$POSTHORN_PORT" || die "port $POSTHORN_PORT is busy"
	rm -rf "$PH_DATA"
	mkdir -p "$RUN/log"
	"$POSTHORN_BIN" init --data-dir "$PH_DATA" --json >"$RUN/log/posthorn-init.json" 2>>"$RUN/log/posthorn.log" ||
		die "posthorn init failed (see $RUN/log/posthorn.log)"
	(cg_join mta; exec "$POSTHORN_BIN" serve --data-dir "$PH_DATA" --smtp-listen "127.0.0.1:$POSTHORN_PORT" \
		--http-listen "127.0.0.1:$POSTHORN_HTTP_PORT" --smarthost "127.0.0.1:$SINK_PORT" \
		--trusted-networks 127.0.0.0/8 --hostname bench.posthorn.test --allow-unverified-senders) >>"$RUN/log/posthorn.log" 2>&1 &
	POSTHORN_PID=$!
	wait_port "$POSTHORN_PORT" 30 || die "posthorn is not listening on $POSTHORN_PORT (see $RUN/log/posthorn.log)"
}
posthorn_stop() { stop_pid "$POSTHORN_PID" posthorn; POSTHORN_PID=''; }
# drained when `queue list --json` shows no items (a JSON array, or an object holding one)
posthorn_queue_empty() {
	"$POSTHORN_BIN" queue list --data-dir "$PH_DATA" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
items = d if isinstance(d, list) else next((v for v in d.values() if isinstance(v, list)), None) if isinstance(d, dict) else None
sys.exit(0 if items is not None and len(items) == 0 else 1)'
}

# ---------------------------------------------------------------- one measured run
mta_port() {
	case $1 in
	sink) echo "$SINK_PORT" ;; postfix) echo "$POSTFIX_PORT" ;;
	exim) echo "$EXIM_PORT" ;; opensmtpd) echo "$OPENSMTPD_PORT" ;;
	posthorn) echo "$POSTHORN_PORT" ;;
	esac
}
queue_empty() { [ "$1" = sink ] || "${1}_queue_empty"; }

# wait_delivered MTA TARGET DEADLINE_EPOCH: until sink count >= TARGET and the MTA's queue
# is empty. Sets DONE_T to the completion time. Returns 1 on timeout (DONE_T = now).
# Must not run in a subshell (it advances the sink reader).
DONE_T=''
wait_delivered() {
	local mta=$1 target=$2 deadline=$3 t
	while :; do
		sink_poll
		if ((SINK_COUNT >= target)); then
			t=$EPOCHREALTIME
			if queue_empty "$mta"; then
				DONE_T=$t
				return 0
			fi
			# the sink has enough transactions but the queue is not empty yet: wait for it
			while ! queue_empty "$mta"; do
				((${EPOCHREALTIME%.*} < deadline)) || { DONE_T=$EPOCHREALTIME; return 1; }
				nap 0.05
			done
			DONE_T=$EPOCHREALTIME
			return 0
		fi
		((${EPOCHREALTIME%.*} < deadline)) || { DONE_T=$EPOCHREALTIME; return 1; }
		nap 0.02
	done
}

smtp_source() { # smtp_source SESSIONS COUNT RCPTS PORT -> runs in harness cgroup, background
	local dflag=-d
	[ "$CONN" = new ] && dflag=''
	(cg_join harness; exec timeout "$INJECT_TIMEOUT" "$SMTP_SOURCE" $dflag -s "$1" -m "$2" -r "$3" \
		-l "$SIZE" -M "$HELO" -f "$FROM" -t "$TO" "127.0.0.1:$4") >"$RUN/log/source.out" 2>&1 &
	SRC_PID=$!
}

# send a few messages and wait until delivered (not measured)
warmup() {
	local mta=$1 n=$2 base rc
	sink_poll
	base=$SINK_COUNT
	smtp_source 10 "$n" 1 "$(mta_port "$mta")"
	wait "$SRC_PID"; rc=$?; SRC_PID=''
	[ $rc = 0 ] || die "$mta warm-up injection failed: $(tail -3 "$RUN/log/source.out")"
	[ "$mta" = sink ] && return 0
	wait_delivered "$mta" $((base + n)) $((${EPOCHREALTIME%.*} + DRAIN_TIMEOUT)) ||
		die "$mta warm-up: not delivered within ${DRAIN_TIMEOUT}s"
}

smoke() { # one message through swaks: proves the path before benchmarking
	local mta=$1 base
	sink_poll
	base=$SINK_COUNT
	swaks --server "127.0.0.1:$(mta_port "$mta")" --helo "$HELO" --from "$FROM" --to "$TO" \
		--header "Subject: posthorn bench smoke test" --silent 2 --timeout 30 >&2 ||
		die "$mta: swaks smoke test was refused"
	[ "$mta" = sink ] && return 0
	wait_delivered "$mta" $((base + 1)) $((${EPOCHREALTIME%.*} + 120)) ||
		die "$mta: smoke-test message not delivered to the sink within 120s"
	log "$mta: smoke test ok (swaks -> $mta -> sink)"
}

fmt() { awk -v x="$1" 'BEGIN { if (x == "NA") print "NA"; else printf "%.2f", x }'; }

measure() { # measure MTA CONC RCPT N RUNNO
	local mta=$1 c=$2 r=$3 n=$4 k=$5 port base t0 t1 t2 rc
	local cm0 ch0 hb0 cm1 ch1 hb1 df0 df1 flushes inj_s e2e_s inj e2e cpu_mta cpu_h other got status=ok
	port=$(mta_port "$mta")
	if [ "$mta" != sink ] && ! queue_empty "$mta"; then
		log "$mta: queue not empty before run; waiting"
		local d=$((${EPOCHREALTIME%.*} + DRAIN_TIMEOUT))
		while ! queue_empty "$mta"; do (( ${EPOCHREALTIME%.*} < d )) || die "$mta queue never drained"; nap 0.5; done
	fi
	nap 2 # let the previous run's stragglers settle
	sink_poll
	base=$SINK_COUNT
	cm0=$(cg_usec mta); ch0=$(cg_usec harness); hb0=$(host_busy_usec); df0=$(disk_flushes)
	t0=$EPOCHREALTIME
	smtp_source "$c" "$n" "$r" "$port"
	wait "$SRC_PID"; rc=$?; SRC_PID=''
	t1=$EPOCHREALTIME
	if [ $rc != 0 ]; then
		status="inject_failed_rc$rc"
		log "$mta: smtp-source failed (rc=$rc): $(tail -3 "$RUN/log/source.out" | tr '\n' ' ')"
	fi
	if [ "$mta" = sink ]; then
		# no queue: done when the sink has counted every message
		wait_delivered sink $((base + n)) $((${EPOCHREALTIME%.*} + 60)) || status=sink_short
	else
		wait_delivered "$mta" $((base + n)) $((${EPOCHREALTIME%.*} + DRAIN_TIMEOUT)) || status=drain_timeout
	fi
	t2=$DONE_T
	cm1=$(cg_usec mta); ch1=$(cg_usec harness); hb1=$(host_busy_usec); df1=$(disk_flushes)
	sink_poll
	got=$((SINK_COUNT - base))
	flushes=NA
	[ -n "$DISK_STAT" ] && flushes=$(awk -v d=$((df1 - df0)) -v n="$n" 'BEGIN { printf "%.2f", d / n }')
	read -r inj_s e2e_s inj e2e cpu_mta cpu_h other < <(awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v n="$n" \
		-v cm=$((cm1 - cm0)) -v ch=$((ch1 - ch0)) -v hb=$((hb1 - hb0)) -v cg="$CG" -v ncpu="$NCPU" -v mta="$mta" 'BEGIN {
		i = t1 - t0; e = t2 - t0
		if (cg == "") { m = "NA"; h = "NA"; o = "NA" }
		else if (mta == "sink") { m = "NA"; h = ch / 1000 / n; o = 100 * (hb - cm - ch) / (e * 1e6 * ncpu); if (o < 0) o = 0 }
		else { m = cm / 1000 / n; h = ch / 1000 / n; o = 100 * (hb - cm - ch) / (e * 1e6 * ncpu); if (o < 0) o = 0 }
		printf "%.3f %.3f %.1f %.1f %s %s %s\n", i, e, n / i, n / e, m, h, o }')
	printf 'RESULT mta=%s conn=%s conc=%s rcpt=%s n=%s size=%s run=%s inject_s=%s e2e_s=%s inject_msgs_per_s=%s e2e_msgs_per_s=%s sink_transactions=%s mta_cpu_ms_per_msg=%s harness_cpu_ms_per_msg=%s other_cpu_pct=%s disk_flushes_per_msg=%s status=%s\n' \
		"$mta" "$CONN" "$c" "$r" "$n" "$SIZE" "$k" "$inj_s" "$e2e_s" "$inj" "$e2e" "$got" \
		"$(fmt "$cpu_mta")" "$(fmt "$cpu_h")" "$(fmt "$other")" "$flushes" "$status"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" \
		"$mta" "$CONN" "$c" "$r" "$n" "$SIZE" "$k" "$inj_s" "$e2e_s" "$inj" "$e2e" "$got" \
		"$(fmt "$cpu_mta")" "$(fmt "$cpu_h")" "$(fmt "$other")" "$flushes" "$status" >>"$RESULTS"
	ROW_INJ+=("$inj"); ROW_E2E+=("$e2e"); ROW_CPU+=("$(fmt "$cpu_mta")"); ROW_OTHER+=("$(fmt "$other")")
	ROW_HCPU+=("$(fmt "$cpu_h")"); ROW_FL+=("$flushes")
}

median() { printf '%s\n' "$@" | grep -v NA | sort -g | awk '{ a[NR] = $1 } END {
	if (NR == 0) print "NA"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

SUMMARY=()
bench_mta() {
	local mta=$1 n c r k
	case $mta in
	sink) n=$N_SINK ;; postfix) n=$N_POSTFIX ;; exim) n=$N_EXIM ;; opensmtpd) n=$N_OPENSMTPD ;;
	posthorn) n=$N_POSTHORN ;;
	*) die "unknown MTA $mta" ;;
	esac
	log "=== $mta: n=$n size=$SIZE conn=$CONN concs=[$CONCS] rcpts=[$RCPTS] runs=$RUNS"
	sink_start
	case $mta in
	sink) ;;
	postfix) postfix_start ;;
	posthorn) posthorn_start ;;
	exim)
		ensure_exim
		log "exim: $("$EXIM_BIN" -C /dev/null -bV 2>/dev/null | grep -m1 'Exim version') (deb $(dpkg-deb -f "$(ls "$RUN"/debs/exim4-daemon-light_*.deb | head -1)" Version))"
		exim_start ;;
	opensmtpd)
		ensure_opensmtpd
		log "opensmtpd: deb $(dpkg-deb -f "$(ls "$RUN"/debs/opensmtpd_*.deb | head -1)" Version)"
		opensmtpd_start ;;
	esac
	smoke "$mta"
	log "$mta: warm-up ($WARMUP messages)"
	warmup "$mta" "$WARMUP"
	for c in $CONCS; do
		for r in $RCPTS; do
			ROW_INJ=() ROW_E2E=() ROW_CPU=() ROW_OTHER=() ROW_HCPU=() ROW_FL=()
			for ((k = 1; k <= RUNS; k++)); do
				log "$mta conc=$c rcpt=$r run $k/$RUNS"
				measure "$mta" "$c" "$r" "$n" "$k"
			done
			SUMMARY+=("$(printf '%s conn=%s conc=%s rcpt=%s n=%s runs=%s inject_msgs_per_s=%s e2e_msgs_per_s=%s mta_cpu_ms_per_msg=%s harness_cpu_ms_per_msg=%s other_cpu_pct=%s disk_flushes_per_msg=%s' \
				"$mta" "$CONN" "$c" "$r" "$n" "$RUNS" "$(median "${ROW_INJ[@]}")" "$(median "${ROW_E2E[@]}")" \
				"$(median "${ROW_CPU[@]}")" "$(median "${ROW_HCPU[@]}")" "$(median "${ROW_OTHER[@]}")" "$(median "${ROW_FL[@]}")")")
			echo "SUMMARY ${SUMMARY[-1]}"
		done
	done
	case $mta in
	postfix) postfix_stop ;; exim) exim_stop ;; opensmtpd) opensmtpd_stop ;; posthorn) posthorn_stop ;;
	esac
	cg_drain mta
	sink_stop
}

fsync_probe() {
	command -v go >/dev/null || { log "go not found: skipping the fsync probe"; return 0; }
	local bin=$RUN/fsyncbench k
	(cd "$HERE/fsync" && go build -o "$bin" fsyncbench.go) || { log "fsyncbench build failed"; return 0; }
	log "fsync probe in $FSYNC_DIR (3 x 5 s per mode)"
	for k in 1 2 3; do "$bin" -dir "$FSYNC_DIR" -dur 5s | sed "s/^/RESULT run=$k /"; done | tee "$RUN/fsync.out"
	local mode
	for mode in append-fsync append-fdatasync newfile-fsync+dirsync; do
		SUMMARY+=("fsync mode=$mode dir=$FSYNC_DIR ops_per_s=$(median $(grep "mode=$mode " "$RUN/fsync.out" |
			sed 's/.*ops_per_s=\([0-9.]*\).*/\1/')) (median of 3 x 5 s)")
		echo "SUMMARY ${SUMMARY[-1]}"
	done
}

versions() {
	log "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
	log "postfix $(postconf -d -h mail_version 2>/dev/null) (deb $(dpkg-query -W -f '${Version}' postfix 2>/dev/null))"
}

# ---------------------------------------------------------------- main
# One benchmark at a time on this machine: the ports, /var/spool/smtpd and the CPU are shared.
LOCK=/run/lock/posthorn-bench.lock
[ -d /run/lock ] || LOCK=/tmp/posthorn-bench.lock
exec {LOCK_FD}>"$LOCK"
flock -n "$LOCK_FD" || die "another postfix-baseline.sh holds $LOCK; run one at a time"

ensure_base
versions
cg_setup
disk_setup
printf '# %s N=%s SIZE=%s RUNS=%s CONCS=%s RCPTS=%s CONN=%s MTAS=%s\n' "$(date -u +%FT%TZ)" "$N" "$SIZE" "$RUNS" "$CONCS" "$RCPTS" "$CONN" "$MTAS" >>"$RESULTS"
printf '# time\tmta\tconn\tconc\trcpt\tn\tsize\trun\tinject_s\te2e_s\tinject_per_s\te2e_per_s\tsink_transactions\tmta_cpu_ms_per_msg\tharness_cpu_ms_per_msg\tother_cpu_pct\tdisk_flushes_per_msg\tstatus\n' >>"$RESULTS"
for m in $MTAS; do
	bench_mta "$m"
done
[ "$FSYNC" = 1 ] && fsync_probe
echo "==== summary (medians of $RUNS runs; machine shared and noisy, compare ratios within one run)"
for s in "${SUMMARY[@]}"; do echo "$s"; done
