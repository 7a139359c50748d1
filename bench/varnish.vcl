# Varnish's side of `make bench`: the same origin and policy as
# bench/edgehost.hcl (default TTL 2m is varnishd -t 120, set by run.sh;
# grace 1h here). Varnish has no slicer: a Range miss fetches the whole
# object and serves the range from it.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "38081";
}

sub vcl_backend_response {
    set beresp.grace = 1h;
}
