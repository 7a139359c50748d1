state_dir = "./var"

listen {
  http  = "127.0.0.1:18080"
  self  = "./var/self.sock"
  admin = "127.0.0.1:18090"
}

admin {
  token = "s3cret"
}

storage {
  memory = "64MiB"
  disk   = "1GiB"
}

backend "origin" {
  url = "http://127.0.0.1:18081"
}

route "/" {
  backend     = backend.origin
  default_ttl = "2m"
  grace       = "1h"
}

# issue 4: the file plugin, as written in the issue.
plugin "file" {}

file "error_page" {
  path = "errors/503.html"
  ttl  = "1s"
}

file "logo" {
  path   = "www/logo.svg"
  ttl    = "1s"
  sha256 = true
}

route "/logo.svg" {
  respond {
    status = 200
    file   = file.logo
  }
}

error_page {
  status = "5xx"
  file   = file.error_page
}
