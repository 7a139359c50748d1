plugin "file" {}

file "page" {
  path     = "errors/503.html"
  ttl      = "often"
  max_size = "a lot"
}

file "gone" {
  path = "errors/none.html"
}

file "bad name" {
  path = "www/logo.svg"
}

route "/x" {
  respond { file = file.nope }
}

route "/y" {
  when = file.page.colour == "red"
  respond { file = "page" }
}

route "/s/" {
  static { root = "./nowhere" }
}

error_page {
  status = "2xx"
  file   = file.page
}

file "other" {
  path   = "www/logo.svg"
  plugin = "files2"
}
