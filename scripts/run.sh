#!/usr/bin/env bash
# make run: the demo origin and edgehost on config.hcl, both stopped by ^C.
set -euo pipefail
cd "$(dirname "$0")/.."
bin/edgehost validate -config config.hcl >/dev/null
bin/edgehost demo-origin -listen 127.0.0.1:18081 &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
cat <<MSG

  edgehost is starting on http://127.0.0.1:18080 (demo origin on :18081)

  try:   curl -si http://127.0.0.1:18080/bytes/1k | head -20     # twice: miss, then hit
         curl -si -H 'Range: bytes=0-99' http://127.0.0.1:18080/bytes/28k
         curl -s  http://127.0.0.1:18080/edgehost/ping
         curl -s  http://127.0.0.1:18080/page/esi                     # ESI, gzip decoded
         bin/edgehost explain http://127.0.0.1:18080/page/text        # the processor chains
         curl -si http://127.0.0.1:18080/logo.svg                     # a file reader
         curl -s  http://127.0.0.1:18080/www/                         # a static directory
         curl -s  http://127.0.0.1:18080/hello/world                  # a tenant's program
         curl -s  http://127.0.0.1:18080/count                        # 1, 2, 3…: a kept instance
         curl -s  'http://127.0.0.1:18080/fetch?src=/bytes/28k'       # a program's self-request
         curl -s  http://127.0.0.1:18080/shout/world                  # a chain of two programs
         bin/edgehost file list
         curl -s -H 'Authorization: Bearer s3cret' http://127.0.0.1:18090/metrics | grep hits
         bin/edgehost purge http://127.0.0.1:18080/bytes/1k
         bin/edgehost log -q 'status >= 400 || dur > 5ms' -g request   # varnishlog-style queries
         bin/edgehost top                                             # most requested, missed, slowest
         open http://127.0.0.1:18090/?token=s3cret                    # the live status page

MSG
bin/edgehost run -config config.hcl
