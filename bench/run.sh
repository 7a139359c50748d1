#!/usr/bin/env bash
# bench/run.sh — `make bench`: edgehost against Varnish and nginx on loopback,
# in one run. How to read the output: bench/README.md.
#
# Starts the demo origin, edgehost (bench/edgehost.hcl), Varnish
# (bench/varnish.vcl) and nginx (bench/nginx.conf) on distinct loopback
# ports, warms each cache, drives 1 KiB and 28 KiB hits with wrk at 1 and 64
# connections, then times a cold 1 MB Range on a 256 MiB object through each
# (issue 6's slicer row). A peer that does not start is reported as such;
# everything started here is stopped on exit. Scratch files: bench/out/.
#
# Environment: BENCH_DURATION (wrk duration per cell, default 3s),
# BENCH_REPEAT (wrk runs per cell, the median is shown with the min-max
# spread, default 5),
# BENCH_COLD_RUNS (cold Range rounds, one run per peer each, default 40),
# BENCH_HITS (0: the cold Range rounds alone, default 1), EDGEHOST_BIN
# (default bin/edgehost), BENCH_PEERS (default "edgehost varnish nginx").
set -u -o pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
DUR=${BENCH_DURATION:-3s}
REPEAT=${BENCH_REPEAT:-5}
COLD_RUNS=${BENCH_COLD_RUNS:-40}
HITS=${BENCH_HITS:-1}
EDGEHOST=${EDGEHOST_BIN:-$ROOT/bin/edgehost}
PEERS=${BENCH_PEERS:-edgehost varnish nginx}

ORIGIN=127.0.0.1:38081
declare -A PORT=([edgehost]=38080 [varnish]=38082 [nginx]=38083)
declare -A STATE=()   # peer -> "up" or why not
declare -A VERSION=() # peer -> version string
declare -A NOTE=()    # peer -> remark for the tables
PIDS=()

RANGE_FIRST=100000000
RANGE_LAST=100999999
BIG=/big/256m
SEGMENT=$((5 << 20))

# The peers: starting, stopping, the tools they need (shared with idle.sh).
. bench/peers.sh

# --- origin stats ----------------------------------------------------------------

origin_reset() { curl -fs -o /dev/null -X POST "http://$ORIGIN/admin/reset"; }

# origin_stat FIELD: a top-level number from the origin's /stats JSON.
origin_stat() {
	curl -fs "http://$ORIGIN/stats" | sed -n "s/^  \"$1\": *\([0-9]*\).*/\1/p"
}

# origin_quiet_bytes: origin body bytes once they stop growing (Varnish goes
# on fetching the whole object after the client has its range).
origin_quiet_bytes() {
	local last=-1 cur stable=0
	for _ in $(seq 100); do
		cur=$(origin_stat bytes_sent)
		if [ "$cur" = "$last" ]; then
			stable=$((stable + 1))
			[ $stable -ge 2 ] && break
		else
			stable=0
		fi
		last=$cur
		sleep 0.2
	done
	echo "$cur"
}

# --- hits ---------------------------------------------------------------------

# warm PEER PATH: fetch twice; the second answer must come from the cache
# (the origin's X-Origin-Request does not change).
warm() {
	local url="http://127.0.0.1:${PORT[$1]}$2" a b
	a=$(curl -fs -D - -o /dev/null "$url" | tr -d '\r' | sed -n 's/^[Xx]-[Oo]rigin-[Rr]equest: //p')
	b=$(curl -fs -D - -o /dev/null "$url" | tr -d '\r' | sed -n 's/^[Xx]-[Oo]rigin-[Rr]equest: //p')
	[ -n "$a" ] && [ "$a" = "$b" ]
}

# to_us VALUE: a wrk latency (12.3us, 1.2ms, 1.1s) in microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.0f", v }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.0f", v * 1000 }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.0f", v * 1000000 }
		else printf "?" }'
}

declare -A RPS=() P50=() P99=() FLAG=() RPS_ALL=() P50_ALL=() P99_ALL=() RPS_MIN=() RPS_MAX=()

# hit_cell PEER ROW PATH THREADS CONNS REP: one wrk run; its req/s, p50 and
# p99 join the cell's samples (the report shows their medians).
hit_cell() {
	local peer=$1 row=$2 path=$3 t=$4 c=$5 rep=$6
	local f=$OUT/wrk-$peer-$row-$rep.txt
	origin_reset
	wrk -t"$t" -c"$c" -d"$DUR" --latency "http://127.0.0.1:${PORT[$peer]}$path" >"$f" 2>&1
	local rps p50 p99 flag="" o
	rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
	p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$f")")
	p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$f")")
	grep -q 'Non-2xx' "$f" && flag+="!"
	grep -q 'Socket errors' "$f" && flag+="e"
	o=$(origin_stat requests)
	# A program's row fetches from the origin by design (the self-request
	# row's first miss); only hit rows are flagged.
	[ -n "$o" ] && [ "$o" -gt 0 ] && [ "${ROW_ORIGIN[$row]:-}" != ok ] && flag+="*"
	curl -fs "http://$ORIGIN/stats" | sed 's/^/origin after the run: /' >>"$f"
	# Flags stick: one bad repetition marks the cell.
	FLAG[$peer,$row]="${FLAG[$peer,$row]:-}$flag"
	[ -n "$rps" ] || return 0
	RPS_ALL[$peer,$row]+="$rps "
	P50_ALL[$peer,$row]+="$p50 "
	P99_ALL[$peer,$row]+="$p99 "
}

# settle PEER ROW: the cell's medians and req/s spread from its samples.
settle() {
	local k=$1,$2
	[ -n "${RPS_ALL[$k]:-}" ] || return 0
	RPS[$k]=$(echo "${RPS_ALL[$k]}" | tr ' ' '\n' | grep -v '^$' | median)
	P50[$k]=$(echo "${P50_ALL[$k]}" | tr ' ' '\n' | grep -v '^$' | median)
	P99[$k]=$(echo "${P99_ALL[$k]}" | tr ' ' '\n' | grep -v '^$' | median)
	RPS_MIN[$k]=$(echo "${RPS_ALL[$k]}" | tr ' ' '\n' | grep -v '^$' | sort -n | head -1)
	RPS_MAX[$k]=$(echo "${RPS_ALL[$k]}" | tr ' ' '\n' | grep -v '^$' | sort -n | tail -1)
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'
}

# --- cold range -------------------------------------------------------------

declare -A TTFB=() TTFB90=() TOTAL=() OBYTES=() CODE=() INTEG=() WARM_TTFB=() WARM_OBYTES=()

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'; }
# p90: the 90th percentile (nearest rank) of numbers, one a line.
p90() { sort -n | awk '{ v[NR] = $1 } END { if (!NR) { print "?"; exit } i = int(NR * 0.9 + 0.999); if (i > NR) i = NR; print v[i] }'; }

declare -A C_TTFBS=() C_TOTALS=() C_BYTES=() C_CODES=()

# cold_run PEER I: one cold Range through PEER (round I); the peers take
# turns within a round, in an order rotated round by round, so a burst of
# outside load, or being first after the pause, favours none of them.
cold_run() {
	local peer=$1 i=$2 url out
	local hdr="Range: bytes=$RANGE_FIRST-$RANGE_LAST"
	# A URL no cache has seen: cold without purging anything.
	url="http://127.0.0.1:${PORT[$peer]}$BIG?cold=$peer-$i-$$"
	origin_quiet_bytes >/dev/null
	origin_reset
	out=$(curl -s -o "$OUT/cold-$peer.bin" --max-time 60 -H "$hdr" \
		-w '%{http_code} %{time_starttransfer} %{time_total}' "$url")
	set -- $out
	C_CODES[$peer]+="${1:-000} "
	C_TTFBS[$peer]+="${2:-0}"$'\n'
	C_TOTALS[$peer]+="${3:-0}"$'\n'
	C_BYTES[$peer]+="$(origin_quiet_bytes)"$'\n'
	if ! cmp -s "$OUT/cold-$peer.bin" "$OUT/range-ref.bin"; then
		INTEG[$peer]="DIFFERS"
	fi
}

# cold_finish PEER: the medians of PEER's cold runs, then the same range
# again (of its last run): a warm hit should cost the origin nothing.
cold_finish() {
	local peer=$1 out
	local hdr="Range: bytes=$RANGE_FIRST-$RANGE_LAST"
	TTFB[$peer]=$(printf '%s' "${C_TTFBS[$peer]}" | median)
	TTFB90[$peer]=$(printf '%s' "${C_TTFBS[$peer]}" | p90)
	TOTAL[$peer]=$(printf '%s' "${C_TOTALS[$peer]}" | median)
	OBYTES[$peer]=$(printf '%s' "${C_BYTES[$peer]}" | median)
	CODE[$peer]=$(echo "${C_CODES[$peer]}" | tr ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ' | sed 's/ $//')
	: "${INTEG[$peer]:=ok}"
	origin_reset
	out=$(curl -s -o /dev/null --max-time 60 -H "$hdr" -w '%{time_starttransfer}' \
		"http://127.0.0.1:${PORT[$peer]}$BIG?cold=$peer-$COLD_RUNS-$$")
	WARM_TTFB[$peer]=$out
	WARM_OBYTES[$peer]=$(origin_quiet_bytes)
}

ms() { awk -v s="$1" 'BEGIN { if (s == "?" || s == "") print "?"; else printf "%.1f ms", s * 1000 }'; }

# --- main ---------------------------------------------------------------------

mkdir -p "$OUT"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
install_tools
for tool in curl wrk; do
	if ! command -v $tool >/dev/null; then
		log "$tool is required and could not be installed"
		exit 1
	fi
done

if ! start_origin; then
	log "the demo origin did not start (see $OUT/origin.log)"
	exit 1
fi
log "demo origin ($ORIGIN_CMD) on $ORIGIN"

start_peers

# A reference copy of the range, straight from the origin.
curl -fs -o "$OUT/range-ref.bin" -H "Range: bytes=$RANGE_FIRST-$RANGE_LAST" "http://$ORIGIN$BIG"

# gunzip rows (issue 16): a 28 KiB page cached gzip, delivered decoded to
# a client without Accept-Encoding (edgehost's processors, nginx's
# `gunzip on`, Varnish's built-in gunzip).
GZ=/page/text?gzip=1
ROWS=(1k-c1 1k-c64 28k-c1 28k-c64 gz-c1 gz-c64)
declare -A ROW_PATH=([1k-c1]=/bytes/1k [1k-c64]=/bytes/1k [28k-c1]=/bytes/28k [28k-c64]=/bytes/28k [gz-c1]=$GZ [gz-c64]=$GZ)
declare -A ROW_T=([1k-c1]=1 [1k-c64]=2 [28k-c1]=1 [28k-c64]=2 [gz-c1]=1 [gz-c64]=2)
declare -A ROW_C=([1k-c1]=1 [1k-c64]=64 [28k-c1]=1 [28k-c64]=64 [gz-c1]=1 [gz-c64]=64)
declare -A ROW_NAME=([1k-c1]="1 KiB hit, 1 conn" [1k-c64]="1 KiB hit, 64 conns" [28k-c1]="28 KiB hit, 1 conn" [28k-c64]="28 KiB hit, 64 conns"
	[gz-c1]="28 KiB gunzip, 1 conn" [gz-c64]="28 KiB gunzip, 64 conn")
# edgehost's compute rows (no peer has compute): an uncached hello program
# per backend, and a program's self-request of a cached 28 KiB object.
CROWS=(hp-c1 hp-c64 hk-c1 hk-c64 self-c1)
ROW_PATH+=([hp-c1]=/c/hp/x [hp-c64]=/c/hp/x [hk-c1]=/c/hk/x [hk-c64]=/c/hk/x [self-c1]="/c/fetch?src=/bytes/28k")
ROW_T+=([hp-c1]=1 [hp-c64]=2 [hk-c1]=1 [hk-c64]=2 [self-c1]=1)
ROW_C+=([hp-c1]=1 [hp-c64]=64 [hk-c1]=1 [hk-c64]=64 [self-c1]=1)
ROW_NAME+=([hp-c1]="hello, process, 1 conn" [hp-c64]="hello, process, 64 c." [hk-c1]="hello, kvm, 1 conn" [hk-c64]="hello, kvm, 64 conns" [self-c1]="self-req 28 KiB, 1 c.")
declare -A ROW_ORIGIN=([self-c1]=ok)

[ "$HITS" = 0 ] && ROWS=() CROWS=()
for peer in $PEERS; do
	[ "${STATE[$peer]}" = up ] || continue
	[ "$HITS" = 0 ] && continue
	for path in /bytes/1k /bytes/28k $GZ; do
		warm "$peer" "$path" || NOTE[$peer]="${NOTE[$peer]:+${NOTE[$peer]}; }$path not served as a hit after warm-up"
	done
done

COMPUTE=""
if [ "$HITS" != 0 ] && [ "${STATE[edgehost]:-}" = up ] && curl -fs -o /dev/null "http://127.0.0.1:${PORT[edgehost]}/c/hp/x"; then
	COMPUTE=up
	curl -fs -o /dev/null "http://127.0.0.1:${PORT[edgehost]}/bytes/28k"
fi
log "hits: wrk -d$DUR per cell, median of $REPEAT ($(echo $PEERS | wc -w) peers x ${#ROWS[@]} rows${COMPUTE:+, and ${#CROWS[@]} compute rows})"
# Peers take turns cell by cell, so a burst of outside load hits them alike.
for rep in $(seq "$REPEAT"); do
	for row in "${ROWS[@]}"; do
		for peer in $PEERS; do
			[ "${STATE[$peer]}" = up ] || continue
			hit_cell "$peer" "$row" "${ROW_PATH[$row]}" "${ROW_T[$row]}" "${ROW_C[$row]}" "$rep"
		done
	done
	if [ -n "$COMPUTE" ]; then
		for row in "${CROWS[@]}"; do
			hit_cell edgehost "$row" "${ROW_PATH[$row]}" "${ROW_T[$row]}" "${ROW_C[$row]}" "$rep"
		done
	fi
done
for row in "${ROWS[@]}" "${CROWS[@]}"; do
	for peer in $PEERS; do
		settle "$peer" "$row"
		FLAG[$peer,$row]=$(printf '%s' "${FLAG[$peer,$row]:-}" | fold -w1 | sort -u | tr -d '\n')
		: "${RPS[$peer,$row]:=?}"
	done
done

log "hits done"
log "cold Range bytes=$RANGE_FIRST-$RANGE_LAST on $BIG, $COLD_RUNS rounds (one run per peer each, order rotated)"
COLD_PEERS=()
for peer in $PEERS; do
	[ "${STATE[$peer]}" = up ] && COLD_PEERS+=("$peer")
done
[ ${#COLD_PEERS[@]} -gt 0 ] || COLD_RUNS=0
for i in $(seq "$COLD_RUNS"); do
	r=$((i % ${#COLD_PEERS[@]}))
	for peer in "${COLD_PEERS[@]:$r}" "${COLD_PEERS[@]:0:$r}"; do
		cold_run "$peer" "$i"
	done
done
for peer in $PEERS; do
	[ "${STATE[$peer]}" = up ] || continue
	cold_finish "$peer"
done

log "cold runs done"

# --- report -------------------------------------------------------------------

# lat MICROSECONDS: 46us, 1.95ms, 147ms.
lat() {
	awk -v u="$1" 'BEGIN {
		if (u !~ /^[0-9]+$/) print "?"
		else if (u < 1000) printf "%dus", u
		else if (u < 10000) printf "%.2fms", u / 1000
		else printf "%.0fms", u / 1000 }'
}

cell() { # PEER ROW
	if [ "${STATE[$1]:-}" != up ]; then
		printf '%40s' "-"
		return
	fi
	printf '%8s%-2s %-13s %7s %7s' "${RPS[$1,$2]}" "${FLAG[$1,$2]}" "[${RPS_MIN[$1,$2]:-?}-${RPS_MAX[$1,$2]:-?}]" "$(lat "${P50[$1,$2]}")" "$(lat "${P99[$1,$2]}")"
}

num() { if [[ ${1:-} =~ ^[0-9.]+$ ]]; then echo "$1"; else echo null; fi; }

# json: every cell's samples and medians, and the cold runs.
json() {
	local first=1 peer row
	printf '{\n  "date": "%s",\n  "commit": "%s",\n  "cpus": %s,\n  "duration": "%s",\n  "repeat": %s,\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null)" "$(nproc)" "$DUR" "$REPEAT"
	printf '  "load_before": "%s",\n  "load_after": "%s",\n  "cells": [\n' "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)"
	for row in "${ROWS[@]}" "${CROWS[@]}"; do
		for peer in $PEERS; do
			[ -n "${RPS_ALL[$peer,$row]:-}" ] || continue
			[ $first = 1 ] || printf ',\n'
			first=0
			printf '    {"peer": "%s", "row": "%s", "name": "%s", "rps_median": %s, "rps_min": %s, "rps_max": %s, "p50_us": %s, "p99_us": %s, "rps": [%s], "flags": "%s"}' \
				"$peer" "$row" "${ROW_NAME[$row]}" "$(num "${RPS[$peer,$row]}")" "$(num "${RPS_MIN[$peer,$row]}")" "$(num "${RPS_MAX[$peer,$row]}")" \
				"$(num "${P50[$peer,$row]}")" "$(num "${P99[$peer,$row]}")" "$(echo ${RPS_ALL[$peer,$row]} | tr ' ' ',')" "${FLAG[$peer,$row]}"
		done
	done
	printf '\n  ],\n  "cold_range": [\n'
	first=1
	for peer in $PEERS; do
		[ "${STATE[$peer]:-}" = up ] || continue
		[ $first = 1 ] || printf ',\n'
		first=0
		printf '    {"peer": "%s", "status": "%s", "ttfb_s": "%s", "ttfb_p90_s": "%s", "ttfb_runs_s": [%s], "total_s": "%s", "origin_bytes": "%s", "body": "%s"}' \
			"$peer" "${CODE[$peer]}" "${TTFB[$peer]}" "${TTFB90[$peer]}" "$(printf '%s' "${C_TTFBS[$peer]}" | tr '\n' ',' | sed 's/,$//')" "${TOTAL[$peer]}" "${OBYTES[$peer]}" "${INTEG[$peer]}"
	done
	printf '\n  ]\n}\n'
}

# hits_report: the hit and compute rows of the report.
hits_report() {
	local hdr="   req/s    [min-max]        p50     p99"
	printf '%-22s | %-40s | %-40s | %-40s | %s\n' "cache hits" "edgehost" "Varnish" "nginx" "edgehost/"
	printf '%-22s | %-40s | %-40s | %-40s | %s\n' "" "$hdr" "$hdr" "$hdr" "Varnish nginx"
	for row in "${ROWS[@]}"; do
		printf '%-22s | %s | %s | %s | %7s %5s\n' "${ROW_NAME[$row]}" \
			"$(cell edgehost "$row")" "$(cell varnish "$row")" "$(cell nginx "$row")" \
			"$(ratio "${RPS[edgehost,$row]:-}" "${RPS[varnish,$row]:-}")" \
			"$(ratio "${RPS[edgehost,$row]:-}" "${RPS[nginx,$row]:-}")"
	done
	echo "  flags after req/s: * origin was hit during the run, ! non-2xx answers, e socket errors"
	if [ -n "$COMPUTE" ]; then
		echo
		printf '%-22s | %-40s | %s\n' "compute (edgehost)" "$hdr" "p50 over a 1 KiB hit (1 conn)"
		for row in "${CROWS[@]}"; do
			printf '%-22s | %s | %s\n' "${ROW_NAME[$row]}" "$(cell edgehost "$row")" \
				"$(awk -v a="${P50[edgehost,$row]:-}" -v b="${P50[edgehost,1k-c1]:-}" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) printf "+%dus", a - b; else print "?" }')"
		done
		echo "  uncached: every request runs the program (hello: 200, no ttl); the self-request row's program fetches a cached 28 KiB object through the self socket and hashes it"
	else
		echo
		echo "compute rows: not run (edgehost did not answer /c/hp/x: are bin/programs built? see bench/out/edgehost/edgehost.log)"
	fi
}

report() {
	echo
	echo "edgehost bench — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null), $(nproc) CPUs, wrk -d$DUR, median of $REPEAT runs per cell (peers interleaved), origin: $ORIGIN_CMD"
	echo "  load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every column)"
	for peer in edgehost varnish nginx; do
		printf '  %-9s %s\n' "$peer" "${VERSION[$peer]:-} ${STATE[$peer]:-not run}${NOTE[$peer]:+ — ${NOTE[$peer]}}"
	done
	echo
	if [ "$HITS" = 0 ]; then
		echo "hit and compute rows: not run (BENCH_HITS=0)"
	else
		hits_report
	fi
	echo
	echo "slicer: cold Range: bytes=$RANGE_FIRST-$RANGE_LAST on $BIG (median of $COLD_RUNS interleaved rounds, TTFB p90 too; target: origin bytes <= $SEGMENT, TTFB <= nginx)"
	printf '%-9s | %-7s | %10s | %10s | %10s | %12s | %-7s | %10s | %s\n' peer status TTFB "TTFB p90" total "origin bytes" body "warm TTFB" "warm origin bytes"
	for peer in edgehost nginx varnish; do
		if [ "${STATE[$peer]:-}" != up ]; then
			printf '%-9s | %s\n' "$peer" "${STATE[$peer]:-not run}"
			continue
		fi
		printf '%-9s | %-7s | %10s | %10s | %10s | %12s | %-7s | %10s | %s\n' "$peer" "${CODE[$peer]}" \
			"$(ms "${TTFB[$peer]}")" "$(ms "${TTFB90[$peer]}")" "$(ms "${TOTAL[$peer]}")" "${OBYTES[$peer]}" "${INTEG[$peer]}" \
			"$(ms "${WARM_TTFB[$peer]}")" "${WARM_OBYTES[$peer]}"
	done
	[ -n "${NOTE[edgehost]:-}" ] && echo "  edgehost: ${NOTE[edgehost]}"
	echo
}

report | tee "$OUT/report.txt"
json >"$OUT/results.json"
echo "raw wrk output, logs and this report: bench/out/"
