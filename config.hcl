# edgehost — the config `make run` uses. It demonstrates every feature that
# runs on embedded defaults: a demo origin on 127.0.0.1:18081 (started by
# `make run` as `edgehost demo-origin`), caching with grace, a pass route, a
# synthetic route, a route chosen by a request condition, the admin API,
# files (readers, a static directory, an error page) and processors (gzip,
# brotli, ESI, regex).
#
# Validate it with: bin/edgehost validate -config config.hcl

state_dir = "./var"

listen {
  http  = "127.0.0.1:18080"
  self  = "./var/self.sock"
  admin = "127.0.0.1:18090"
}

admin {
  token          = "s3cret" # needed for everything on the admin listener but /healthz
  public_metrics = false    # true: /metrics without the token (a Prometheus without credentials)
}

storage {
  memory     = "64MiB"
  disk       = "1GiB"
  max_object = "64MiB"
  # programs.db (tenants' programs): the largest upload, binaries kept per tenant
  max_program   = "64MiB"
  keep_programs = 5
}

limits {
  max_header_bytes = "32KiB"
  header_timeout   = "10s"
  idle_timeout     = "75s"
  max_connections  = 10000 # client connections; past it the oldest idle one is closed
  self_concurrency = 256
  max_depth        = 8
}

backend "origin" {
  url                   = "http://127.0.0.1:18081"
  connect_timeout       = "2s"
  first_byte_timeout    = "15s"
  between_bytes_timeout = "10s"

  probe {
    path     = "/healthz"
    interval = "5s"
    timeout  = "1s"
  }
}

# RFC 9111 decides what is cached and for how long: the origin's
# CDN-Cache-Control (RFC 9213), else Cache-Control / Expires, else 10% of
# the time since Last-Modified (at most heuristic_max); a response with none
# of these is not reused without revalidation. Fresh objects are served
# stale for an hour while one background fetch revalidates them.
cache {
  targeted_fields = ["Edgehost-Cache-Control", "CDN-Cache-Control"] # first present wins over Cache-Control
  heuristic_max   = "1d"
}

route "/" {
  backend = backend.origin
  grace   = "1h"
  keep    = "1d"
  # default_ttl = "2m"  # the operator's choice for responses without freshness
  #                     # information (Varnish applies 120 s to all of them)
}

# Never cached.
route "/echo" {
  backend = backend.origin
  pass    = true
}

# Beta testers (X-Beta: 1) bypass the cache for /bytes/.
route "/bytes/" {
  when    = lookup(request.headers, "x-beta", "") == "1"
  backend = backend.origin
  pass    = true
}

# Large objects (video, downloads) are cached as 5 MiB segments, each
# fetched from the origin with a Range request; a client's Range fetches
# only the segments it overlaps. Try:
#   curl -s -o /dev/null -w '%{http_code} %{size_download}\n' -H 'Range: bytes=100000000-100999999' http://127.0.0.1:18080/big/256m
plugin "slicer" {}

# Compute (the compute plugin): tenants' programs, static x86-64 ELF built
# from plugins/compute/examples by make build, booted to their snapshot
# when the plugin starts, answering the routes below (in tiny VMs where KVM
# is usable and not slower, else in seccomp-sandboxed processes):
#   curl http://127.0.0.1:18080/hello/world          # hello from /hello/world
#   curl http://127.0.0.1:18080/count                # 1, 2, 3… (a kept instance)
#   curl -o dot.png 'http://127.0.0.1:18080/png?w=64&h=64'
#   curl 'http://127.0.0.1:18080/fetch?src=/bytes/28k'   # a program's self-request
#   curl http://127.0.0.1:18080/shout/world          # a chain: hello, then upper
# A chain may start with "fetch", the route's backend, fetched by the host
# without holding a program's slot: chain = ["fetch", tenant.upper].
plugin "compute" {
  self_socket = "./var/self.sock"
  tenant "hello" {
    program     = "bin/programs/hello"
    concurrency = 2
  }
  tenant "counter" {
    program     = "bin/programs/counter"
    ephemeral   = false # the instance keeps its memory between requests
    concurrency = 1     # one instance, so one count
  }
  tenant "png" {
    program          = "bin/programs/png"
    max_request_time = "2s"
  }
  tenant "fetch" {
    program = "bin/programs/fetch"
  }
  tenant "upper" {
    program = "bin/programs/upper"
  }
}

route "/hello/" { compute = tenant.hello }
route "/count" { compute = tenant.counter }
route "/png" { compute = tenant.png }
route "/fetch" { compute = tenant.fetch }
route "/shout/" { chain = [tenant.hello, tenant.upper] }

route "/big" {
  backend = backend.origin
  slice {
    size       = "5MiB"
    stage      = "response"
    on_failure = "pass"
  }
}

# Processors (issue 16): body transforms placed by the formats they take
# and give; the host inserts gunzip, gzip, unbrotli, brotli and buffer
# where formats do not meet. Every route with a processors block also
# negotiates Accept-Encoding: a client that cannot take the stored
# encoding gets it decoded (and Range applies to what it gets). Try:
#   curl -s http://127.0.0.1:18080/page/text | head -3                # stored gzip, sent plain
#   curl -s -H 'Accept-Encoding: gzip' http://127.0.0.1:18080/page/text | gunzip | head -3
#   curl -s -H 'Range: bytes=0-14' http://127.0.0.1:18080/page/text   # a range of the plain text
#   curl -s http://127.0.0.1:18080/page/text?br=1 | head -3             # br from the origin, decoded
#   curl -s http://127.0.0.1:18080/page/esi                           # ESI, the fragment cached 10 s
#   bin/edgehost explain -config config.hcl http://127.0.0.1:18080/page/esi
route "/page/" {
  backend = backend.origin
  processors {
    fetch   = ["gzip"]  # plain text is stored compressed
    deliver = ["regex"] # "EUR" becomes "€" on the way out
    regex {
      pattern = "(\\d+\\.\\d+) EUR"
      replace = "€$1"
    }
  }
}

route "/page/esi" {
  backend = backend.origin
  processors {
    deliver = ["esi"]
  }
}

# Answered by edgehost itself.
route "/edgehost/ping" {
  respond {
    status  = 200
    body    = "pong\n"
    headers = { "Cache-Control" = "no-store" }
  }
}

# Files (the file plugin): named readers kept in memory and checked in the
# background; no file I/O on the request path. Try:
#   curl -si http://127.0.0.1:18080/logo.svg                   # ETag, Last-Modified
#   curl -si -H 'If-None-Match: "sha256-…"' http://127.0.0.1:18080/logo.svg   # 304
#   curl -s  http://127.0.0.1:18080/www/                       # static, cached
#   curl -si http://127.0.0.1:18080/status/502                 # the origin's own 502 passes
#   bin/edgehost file list ; bin/edgehost file check logo
plugin "file" {}

file "error_page" {
  path = "errors/503.html"
  ttl  = "10s"
}

file "logo" {
  path   = "www/logo.svg"
  ttl    = "5s"
  sha256 = true
}

route "/logo.svg" {
  respond {
    status  = 200
    file    = file.logo
    headers = { "Cache-Control" = "public, max-age=60" }
  }
}

# A directory served through the plugin: read on a miss, cached, purged
# when the plugin sees a file change.
route "/www/" {
  static {
    root = "./www"
    ttl  = "2s"
  }
}

# Replaces the built-in page of every 5xx that edgehost itself answers
# (origin down, unhealthy, timed out): stop the demo origin to see it.
error_page {
  status = "5xx"
  file   = file.error_page
}
