storage {
  memory = "64 parsecs"
}

backend "origin" {
  url = "ftp://example.com"
  connect_timeout = "soon"
}

route "/api" {
  backend = backend.nope
  when    = request.methd == "GET"
}

route "/x" {
  backend = backend.origin
  colour  = "blue"
}
