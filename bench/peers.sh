# bench/peers.sh — sourced by bench/run.sh and bench/idle.sh: the tools the
# benchmarks install, and starting and stopping the demo origin, edgehost,
# Varnish and nginx. The sourcing script sets ROOT, OUT, EDGEHOST, ORIGIN,
# PORT, STATE, VERSION, NOTE and PIDS. Hooks for a run that needs other
# limits than the hit benchmarks: EDGEHOST_EXTRA (config blocks appended to
# bench/edgehost.hcl), VARNISH_PARAMS (more varnishd arguments), NGINX_CONF
# (another nginx.conf).

log() { printf "bench [%3ds]: %s\n" "$SECONDS" "$*" >&2; }

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		# Wait for our own children (bounded: a peer that ignores TERM is
		# killed after 5 s).
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------

nginx_has_slice() { command -v nginx >/dev/null && nginx -V 2>&1 | grep -q -- --with-http_slice_module; }

install_tools() {
	local need=()
	command -v varnishd >/dev/null || need+=(varnish)
	nginx_has_slice || need+=(nginx-core)
	command -v wrk >/dev/null || need+=(wrk)
	command -v curl >/dev/null || need+=(curl)
	[ ${#need[@]} -eq 0 ] && return 0
	log "installing ${need[*]} (apt-get)"
	local sudo=
	[ "$(id -u)" -ne 0 ] && sudo="sudo -n"
	local apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300"
	if ! $apt install -y --no-install-recommends "${need[@]}" >"$OUT/apt.log" 2>&1; then
		$apt update >>"$OUT/apt.log" 2>&1
		# Debian releases after bookworm fold nginx-core into nginx.
		$apt install -y --no-install-recommends "${need[@]}" >>"$OUT/apt.log" 2>&1 ||
			$apt install -y --no-install-recommends "${need[@]/nginx-core/nginx}" >>"$OUT/apt.log" 2>&1 ||
			log "apt-get failed, see $OUT/apt.log"
	fi
}

# --- processes ---------------------------------------------------------------

# wait_http URL SECONDS PID: until URL answers 2xx, or PID exits, or time
# is up.
wait_http() {
	local url=$1 secs=$2 pid=${3:-}
	local end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		curl -fs -o /dev/null --max-time 1 "$url" && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

# port_busy PORT: something already listens there (another test, a peer
# left over): benchmarking it would measure a stranger.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_pid() {
	local pid=$1
	kill "$pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
}

start_origin() {
	if port_busy "${ORIGIN##*:}"; then
		log "port ${ORIGIN##*:} is in use"
		return 1
	fi
	if [ -x "$EDGEHOST" ]; then
		"$EDGEHOST" demo-origin -listen "$ORIGIN" >"$OUT/origin.log" 2>&1 &
		local pid=$!
		if wait_http "http://$ORIGIN/stats" 5 "$pid"; then
			PIDS+=("$pid")
			ORIGIN_CMD="edgehost demo-origin"
			return 0
		fi
		stop_pid "$pid"
	fi
	# edgehost has no demo-origin command (yet): the same package through
	# bench/cmd/origin.
	if ! go build -o "$OUT/origin" ./bench/cmd/origin >"$OUT/origin.log" 2>&1; then
		log "cannot build the demo origin: $(tail -3 "$OUT/origin.log")"
		return 1
	fi
	"$OUT/origin" -listen "$ORIGIN" >>"$OUT/origin.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	ORIGIN_CMD="bench/cmd/origin"
	wait_http "http://$ORIGIN/stats" 10 "$pid"
}

start_edgehost() {
	local dir=$OUT/edgehost
	if [ ! -x "$EDGEHOST" ]; then
		STATE[edgehost]="not built ($EDGEHOST missing)"
		return
	fi
	VERSION[edgehost]=$("$EDGEHOST" version 2>/dev/null | head -1)
	rm -rf "$dir" && mkdir -p "$dir/var"
	# Copied beside its state: relative paths resolve the same from the
	# working directory or from the config file.
	local nokvm=()
	[ -e /dev/kvm ] || nokvm=(-e '/# kvm-begin/,/# kvm-end/d' -e '/# kvm-line/d')
	sed "${nokvm[@]}" -e "s|{{ROOT}}|$ROOT|g" bench/edgehost.hcl >"$dir/edgehost.hcl"
	printf '%s\n' "${EDGEHOST_EXTRA:-}" >>"$dir/edgehost.hcl"
	local pid
	(cd "$dir" && exec "$EDGEHOST" run -config "$dir/edgehost.hcl" >"$dir/edgehost.log" 2>&1) &
	pid=$!
	if wait_http "http://127.0.0.1:${PORT[edgehost]}/healthz" 15 "$pid"; then
		PIDS+=("$pid")
		STATE[edgehost]=up
		return
	fi
	stop_pid "$pid"
	# Without the slicer plugin (not built yet, or failing): the hit rows
	# still mean something; the slicer row says what ran.
	log "edgehost did not start with the slicer route: $(tail -2 "$dir/edgehost.log" | tr '\n' ' ')"
	sed "${nokvm[@]}" -e '/# slicer-begin/,/# slicer-end/d' -e "s|{{ROOT}}|$ROOT|g" bench/edgehost.hcl >"$dir/edgehost.hcl"
	printf '%s\n' "${EDGEHOST_EXTRA:-}" >>"$dir/edgehost.hcl"
	mv "$dir/edgehost.log" "$dir/edgehost-slicer.log"
	(cd "$dir" && exec "$EDGEHOST" run -config "$dir/edgehost.hcl" >"$dir/edgehost.log" 2>&1) &
	pid=$!
	if wait_http "http://127.0.0.1:${PORT[edgehost]}/healthz" 15 "$pid"; then
		PIDS+=("$pid")
		STATE[edgehost]=up
		NOTE[edgehost]="no slicer (see bench/out/edgehost/edgehost-slicer.log)"
		return
	fi
	stop_pid "$pid"
	STATE[edgehost]="failed to start (bench/out/edgehost/edgehost.log): $(grep -v '^$' "$dir/edgehost.log" | tail -1 | cut -c1-100)"
}

start_varnish() {
	if ! command -v varnishd >/dev/null; then
		STATE[varnish]="not installed"
		return
	fi
	VERSION[varnish]=$(varnishd -V 2>&1 | sed -n 's/.*(\(varnish-[0-9.]*\).*/\1/p' | head -1)
	local dir=$OUT/varnish
	rm -rf "$dir" && mkdir -p "$dir"
	# -j none: no privilege separation (works unprivileged and as root);
	# -t 120: default TTL 2m as edgehost's default_ttl; malloc large enough
	# to hold the 256 MiB objects of the cold runs.
	varnishd -F -j none -n "$dir/work" -a "127.0.0.1:${PORT[varnish]}" \
		-f "$ROOT/bench/varnish.vcl" -t 120 -s malloc,1g ${VARNISH_PARAMS:-} \
		>"$dir/varnishd.log" 2>&1 &
	local pid=$!
	if wait_http "http://127.0.0.1:${PORT[varnish]}/healthz" 20 "$pid"; then
		PIDS+=("$pid")
		STATE[varnish]=up
		return
	fi
	stop_pid "$pid"
	STATE[varnish]="failed to start: $(grep -v '^$' "$dir/varnishd.log" | tail -1 | cut -c1-100)"
}

start_nginx() {
	if ! command -v nginx >/dev/null; then
		STATE[nginx]="not installed"
		return
	fi
	VERSION[nginx]=$(nginx -v 2>&1 | sed -n 's/.*nginx\/\([0-9.]*\).*/nginx-\1/p')
	nginx_has_slice || NOTE[nginx]="no slice module"
	local dir=$OUT/nginx
	rm -rf "$dir" && mkdir -p "$dir/tmp" "$dir/cache"
	nginx -p "$dir/" -e "$dir/error.log" -c "${NGINX_CONF:-$ROOT/bench/nginx.conf}" -g 'daemon off;' \
		>"$dir/nginx.log" 2>&1 &
	local pid=$!
	if wait_http "http://127.0.0.1:${PORT[nginx]}/healthz" 10 "$pid"; then
		PIDS+=("$pid")
		STATE[nginx]=up
		return
	fi
	stop_pid "$pid"
	STATE[nginx]="failed to start: $(cat "$dir/nginx.log" "$dir/error.log" 2>/dev/null | grep -v '^$' | tail -1 | cut -c1-100)"
}

# start_peers: every peer of $PEERS whose ports are free; PID[peer] is the
# pid of a peer that is up (its processes are that pid and its children).
declare -A PID=()
start_peers() {
	local peer port
	for peer in $PEERS; do
		for port in ${PORT[$peer]} $([ "$peer" = edgehost ] && echo 38090); do
			if port_busy "$port"; then
				STATE[$peer]="not started: port $port is in use by another process"
				continue 2
			fi
		done
		"start_$peer"
		log "$peer: ${STATE[$peer]}${NOTE[$peer]:+ — ${NOTE[$peer]}}"
		[ "${STATE[$peer]}" = up ] && PID[$peer]=${PIDS[-1]}
	done
}
