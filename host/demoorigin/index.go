package demoorigin

import "net/http"

// indexText is the page GET / serves: the list of endpoints.
const indexText = `edgehost demo origin

Every response carries X-Origin-Request: <n> (a global request sequence).
Any endpoint takes ?cc=VALUE (Cache-Control: VALUE) or ?max-age=S.
Sizes take a k, m or g suffix (binary: 1k = 1024).

Objects
  GET /bytes/N[?seed=S]     N deterministic bytes, application/octet-stream,
                            max-age=3600, strong ETag from N and S, fixed
                            Last-Modified, 304 on If-None-Match/If-Modified-Since
  GET /big/N                N bytes generated on the fly (byte i = f(i, version)),
                            ETag and Last-Modified change with the version,
                            single Range and If-Range (206/416), Accept-Ranges,
                            HEAD; ?nolength=1 chunked without Content-Length,
                            ?gzip=1 Content-Encoding: gzip, ?noetag=1,
                            ?nolastmod=1 leave a validator out
  POST /admin/version       bump the /big version (content and validators change)
  GET  /admin/version       the current /big version

Pages (processors: gzip, brotli, ESI)
  GET /page/text[?gzip=1|br=1]  a 28 KiB HTML page, plain, gzip or br
  GET /page/esi             a gzip page with <esi:include src="/page/fragment"/>,
                            esi:remove and <!--esi-->
  GET /page/fragment        an HTML fragment (max-age=10, counted)

Faults
  GET /status/CODE          that status
  GET /delay/MS             sleeps MS ms before the headers
  GET /stall[?size=N&send=M&for=D]
                            headers for N bytes (1m), sends M (1k), stalls D (1m)
  GET /truncate/N           Content-Length N, sends N/2, closes the connection

Cache behaviour
  GET /cookie               Set-Cookie, max-age=3600
  GET /vary                 Vary: Accept-Language, body echoes it
  GET /tag/NAME[,NAME]      Surrogate-Key and xkey: NAME...
  GET /cc?value=V           Cache-Control: V
  GET /etag[?v=TAG]         ETag "TAG", Last-Modified, 304s (counted)
  GET /counter[/NAME]       body: times this path was fetched
  GET /echo                 the request as received (method, headers, body)

Control (not counted in the stats)
  GET  /healthz             ok
  GET  /stats               JSON: requests and body bytes, total and per
                            path prefix, 304s, the /big version
  POST /admin/reset         zero the stats and the counters
`

func (o *Origin) serveIndex(w http.ResponseWriter, r *http.Request) {
	defaultCC(w.Header(), hvNoStore)
	o.text(w, r, epIndex, http.StatusOK, indexText)
}
