#!/usr/bin/env bash
# bench/idle.sh — `make bench-idle` (and the last table of `make bench`):
# the memory of idle keep-alive connections in edgehost, Varnish and nginx,
# in one run (issue 15, item 3: at most 8 KiB each).
#
# Starts the demo origin and the peers as bench/run.sh does (bench/peers.sh),
# with limits that let them hold the connections: edgehost with
# max_connections above them, Varnish with timeout_idle 300 s (its default,
# 5 s, would close them), nginx with worker_connections above them. For
# each peer in turn (all are started first): warm /bytes/1k, take the RSS of all its processes
# (edgehost and its plugins; Varnish's manager and child; nginx's master
# and workers), open IDLE_CONNS connections that each GET /bytes/1k once
# and then stay idle (bench/cmd/idleconns), wait IDLE_SETTLE, take the RSS
# again: (after - before) / IDLE_CONNS is a connection's cost.
#
# Environment: IDLE_CONNS (default 10000), IDLE_SETTLE (default 3s),
# EDGEHOST_BIN (default bin/edgehost), BENCH_PEERS (default "edgehost
# varnish nginx").
set -u -o pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
N=${IDLE_CONNS:-10000}
SETTLE=${IDLE_SETTLE:-3s}
EDGEHOST=${EDGEHOST_BIN:-$ROOT/bin/edgehost}
PEERS=${BENCH_PEERS:-edgehost varnish nginx}

ORIGIN=127.0.0.1:38081
declare -A PORT=([edgehost]=38080 [varnish]=38082 [nginx]=38083)
declare -A STATE=() VERSION=() NOTE=()
PIDS=()

. bench/peers.sh

# Each peer holds N client sockets (plus its own): the client and the
# peers need descriptors for them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((N + 1000)) ]; then
	log "ulimit -n is $(ulimit -n) (hard limit): $N connections need $((N + 1000))"
	exit 1
fi
EDGEHOST_EXTRA="limits {
  max_connections = $((N + 500))
}"
VARNISH_PARAMS="-p timeout_idle=300"
mkdir -p "$OUT"
NGINX_CONF=$OUT/nginx-idle.conf
sed -e "s/worker_connections [0-9]*;/worker_connections $((N + 1000));/" bench/nginx.conf >"$NGINX_CONF"
# nginx resolves relative paths against its prefix (-p bench/out/nginx/).
sed -i -e '/^worker_processes/a worker_rlimit_nofile '"$((N + 2000))"';' "$NGINX_CONF"

# tree_pids PID: PID and all its descendants.
tree_pids() {
	local p
	echo "$1"
	for p in $(pgrep -P "$1"); do
		tree_pids "$p"
	done
}

# rss_kib PID: the summed VmRSS of PID's process tree, in KiB.
rss_kib() {
	local p sum=0 v
	for p in $(tree_pids "$1"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

if ! go build -o "$OUT/idleconns" ./bench/cmd/idleconns >"$OUT/idleconns-build.log" 2>&1; then
	log "cannot build bench/cmd/idleconns: $(tail -3 "$OUT/idleconns-build.log")"
	exit 1
fi
install_tools
if ! start_origin; then
	log "the demo origin did not start (see $OUT/origin.log)"
	exit 1
fi

# All peers first: they hold their ports before the clients' ephemeral
# ports (the same range on loopback) are taken.
declare -A BEFORE=() AFTER=() PER=()
start_peers

for peer in $PEERS; do
	[ "${STATE[$peer]}" = up ] || continue
	pid=${PID[$peer]}
	curl -fs -o /dev/null "http://127.0.0.1:${PORT[$peer]}/bytes/1k"
	curl -fs -o /dev/null "http://127.0.0.1:${PORT[$peer]}/bytes/1k"
	sleep 1
	BEFORE[$peer]=$(rss_kib "$pid")
	# The client waits on a pipe that this script holds open.
	fifo=$OUT/idle-$peer.fifo
	rm -f "$fifo" && mkfifo "$fifo"
	"$OUT/idleconns" -addr "127.0.0.1:${PORT[$peer]}" -n "$N" <"$fifo" >"$OUT/idle-$peer.txt" 2>&1 &
	client=$!
	exec 3>"$fifo"
	for _ in $(seq 600); do
		grep -q '^ready' "$OUT/idle-$peer.txt" && break
		kill -0 "$client" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q '^ready' "$OUT/idle-$peer.txt"; then
		sleep "$SETTLE"
		AFTER[$peer]=$(rss_kib "$pid")
		PER[$peer]=$(awk -v a="${AFTER[$peer]}" -v b="${BEFORE[$peer]}" -v n="$N" 'BEGIN { printf "%.2f", (a - b) / n }')
	else
		NOTE[$peer]="the client failed: $(tail -1 "$OUT/idle-$peer.txt")"
	fi
	exec 3>&-
	wait "$client" 2>/dev/null
	rm -f "$fifo"
	log "$peer: ${PER[$peer]:-?} KiB per idle connection ${NOTE[$peer]:-}"
done

echo
echo "idle keep-alive connections — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null), $N connections per peer, each after one GET /bytes/1k, RSS ${SETTLE} after the last"
printf '%-9s | %12s | %12s | %14s | %s\n' peer "RSS before" "RSS after" "per conn" ""
for peer in $PEERS; do
	if [ -z "${PER[$peer]:-}" ]; then
		printf '%-9s | %12s | %12s | %14s | %s\n' "$peer" - - - "${STATE[$peer]:-} ${NOTE[$peer]:-}"
		continue
	fi
	printf '%-9s | %9s KiB | %9s KiB | %10s KiB | %s\n' "$peer" "${BEFORE[$peer]}" "${AFTER[$peer]}" "${PER[$peer]}" "${VERSION[$peer]:-}"
done
