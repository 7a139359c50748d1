package demoorigin

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/andybalholm/brotli"
)

// Text pages for the processors (issue 16): a compressible HTML page in
// three encodings and an ESI page with its fragment.

// PageText is the body of /page/text: 28 KiB of HTML.
var PageText = func() string {
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html><head><title>catalogue</title></head><body><ul>\n")
	for i := 0; b.Len() < 28<<10-64; i++ {
		b.WriteString("<li><a href=\"/item/" + strconv.Itoa(i) + "\">Item " + strconv.Itoa(i) + " of the catalogue, 12.50 EUR</a></li>\n")
	}
	b.WriteString("</ul></body></html>\n")
	return b.String()
}()

// PageESI is the body of /page/esi (before gzip).
const PageESI = `<!doctype html>
<html><body>
<h1>An ESI page</h1>
<esi:include src="/page/fragment"/>
<esi:remove><p>Shown only without ESI.</p></esi:remove>
<!--esi <p>Shown only with ESI.</p> -->
<esi:include src="/page/missing" onerror="continue"/>
</body></html>
`

var (
	pageGzip = compress(PageText, false)
	pageBr   = compress(PageText, true)
	esiGzip  = compress(PageESI, false)
	hvHTML   = []string{"text/html; charset=utf-8"}
	hvBr     = []string{"br"}
)

var fragments atomic.Int64

func compress(s string, br bool) []byte {
	var b bytes.Buffer
	if br {
		w := brotli.NewWriterLevel(&b, 6)
		w.Write([]byte(s))
		w.Close()
	} else {
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		w.Write([]byte(s))
		w.Close()
	}
	return b.Bytes()
}

func (o *Origin) servePage(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	defaultCC(h, hvMaxAge)
	h["Content-Type"] = hvHTML
	var body []byte
	switch name {
	case "text":
		body = []byte(PageText)
		switch q := r.URL.Query(); {
		case q.Get("gzip") == "1":
			body, h["Content-Encoding"] = pageGzip, hvGzip
		case q.Get("br") == "1":
			body, h["Content-Encoding"] = pageBr, hvBr
		}
	case "esi":
		body, h["Content-Encoding"] = esiGzip, hvGzip
	case "fragment":
		h["Cache-Control"] = []string{"max-age=10"}
		body = []byte("<p>Fragment #" + strconv.FormatInt(fragments.Add(1), 10) + ", cached for 10 s.</p>")
	default:
		o.notFound(w, epPage)
		return
	}
	h["Etag"] = []string{`"page-` + name + `-` + strconv.Itoa(len(body)) + `"`}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_ = o.write(w, epPage, body)
	}
}
