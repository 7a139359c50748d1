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
