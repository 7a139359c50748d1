# edgehost's side of `make bench`: the acceptance config of issue 2 with the
# bench's ports, plus the slicer route of issue 6. run.sh copies it into
# bench/out/edgehost/ and starts edgehost there, so the relative paths land
# under bench/out/ whichever directory edgehost resolves them against.
state_dir = "./var"

listen {
  http  = "127.0.0.1:38080"
  self  = "./var/self.sock"
  admin = "127.0.0.1:38090"
}

admin {
  token = "s3cret"
}

storage {
  memory = "64MiB"
  disk   = "1GiB"
}

backend "origin" {
  url = "http://127.0.0.1:38081"
}

route "/" {
  backend     = backend.origin
  default_ttl = "2m"
  grace       = "1h"
}

# A gzip page cached as it came and decoded for clients without gzip
# (issue 16's gunzip row): a processors block negotiates Accept-Encoding.
route "/page/" {
  backend    = backend.origin
  processors {}
}

# Compute rows: an uncached hello program on each backend, and a program
# that fetches a cached object through the self socket.
plugin "compute" {
  self_socket = "./var/self.sock"
  tenant "hp" {
    program     = "{{ROOT}}/bin/programs/hello"
    backend     = "process"
    concurrency = 2
  }
  # kvm-begin (run.sh drops this part where /dev/kvm is missing)
  tenant "hk" {
    program     = "{{ROOT}}/bin/programs/hello"
    backend     = "kvm"
    concurrency = 2
  }
  # kvm-end
  tenant "fetch" {
    program = "{{ROOT}}/bin/programs/fetch"
    backend = "process"
  }
}
route "/c/hp/" { compute = tenant.hp }
route "/c/hk/" { compute = tenant.hk } # kvm-line
route "/c/fetch" { compute = tenant.fetch }

# slicer-begin (run.sh drops this part if edgehost will not start with it)
plugin "slicer" {}

route "/big" {
  backend = backend.origin
  slice {
    size       = "5MiB"
    stage      = "response"
    on_failure = "pass"
  }
}
# slicer-end
