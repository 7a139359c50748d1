package demoorigin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// The endpoints in this file each exercise one rule of a shared cache
// (RFC 9111): what may be stored, under which key, for how long, and how it
// is revalidated.

// serveCookie answers /cookie with a Set-Cookie (its value names the
// request number) and max-age=3600: a shared cache must not hand the cookie
// to another client unless told to.
func (o *Origin) serveCookie(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	defaultCC(h, hvMaxAge)
	n := h.Get("X-Origin-Request")
	h["Set-Cookie"] = []string{"session=s" + n + "; Path=/; HttpOnly"}
	o.text(w, r, epCookie, http.StatusOK, "cookie session=s"+n+"\n")
}

// serveVary answers /vary with Vary: Accept-Language and a body that echoes
// the request's Accept-Language: one stored variant per language.
func (o *Origin) serveVary(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	defaultCC(h, hvMaxAge)
	h["Vary"] = hvVaryAL
	o.text(w, r, epVary, http.StatusOK, "Accept-Language: "+r.Header.Get("Accept-Language")+"\n")
}

// serveTag answers /tag/NAMES (NAMES separated by commas) with the names as
// Surrogate-Key and xkey headers (space-separated), for purge by tag.
func (o *Origin) serveTag(w http.ResponseWriter, r *http.Request, arg string) {
	if arg == "" {
		o.badRequest(w, epTag, "/tag/NAME[,NAME...]")
		return
	}
	keys := strings.Join(strings.FieldsFunc(arg, func(c rune) bool { return c == ',' || c == ' ' || c == '+' }), " ")
	h := w.Header()
	defaultCC(h, hvMaxAge)
	h["Surrogate-Key"] = []string{keys}
	h["Xkey"] = []string{keys}
	o.text(w, r, epTag, http.StatusOK, "tags "+keys+"\n")
}

// serveCC answers /cc?value=V with Cache-Control: V (absent when V is
// empty), echoed in the body.
func (o *Origin) serveCC(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("value")
	h := w.Header()
	if v != "" {
		h["Cache-Control"] = []string{v}
	}
	o.text(w, r, epCC, http.StatusOK, "cache-control: "+v+"\n")
}

// serveETag answers /etag[?v=TAG]: ETag "TAG" (default "v1"), the fixed
// Last-Modified, no Cache-Control unless the query sets one (a cache applies
// its default TTL), and 304 (counted in Stats.NotModified) to a matching
// If-None-Match or a not-older If-Modified-Since.
func (o *Origin) serveETag(w http.ResponseWriter, r *http.Request) {
	tag := "v1"
	if r.URL.RawQuery != "" {
		if v := r.URL.Query().Get("v"); v != "" {
			tag = v
		}
	}
	etag := strconv.Quote(tag)
	h := w.Header()
	h["Etag"] = []string{etag}
	h["Last-Modified"] = hvLastMod
	if notModified(r, etag, fixedLastModified) {
		o.answerNotModified(w)
		return
	}
	o.text(w, r, epETag, http.StatusOK, "etag "+etag+"\n")
}

// serveCounter answers /counter[/NAME] with the number of times that path
// was fetched (this fetch included), so a test sees exactly how often a
// cache went to the origin. No Cache-Control unless the query sets one.
func (o *Origin) serveCounter(w http.ResponseWriter, r *http.Request) {
	c, _ := o.counters.LoadOrStore(r.URL.Path, new(atomic.Int64))
	n := c.(*atomic.Int64).Add(1)
	o.text(w, r, epCounter, http.StatusOK, strconv.FormatInt(n, 10)+"\n")
}

// maxEchoBody bounds the request body /echo reads and shows.
const maxEchoBody = 1 << 20

// serveEcho answers /echo with the request as the origin received it:
// request line, Host, headers in sorted order, a blank line, the body. It
// is no-store unless the query says otherwise.
func (o *Origin) serveEcho(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	b.WriteString(r.Method + " " + r.RequestURI + " " + r.Proto + "\n")
	b.WriteString("Host: " + r.Host + "\n")
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range r.Header[k] {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	if r.Body != nil {
		buf := make([]byte, 32<<10)
		for b.Len() < maxEchoBody {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
	}
	defaultCC(w.Header(), hvNoStore)
	o.text(w, r, epEcho, http.StatusOK, b.String())
}
