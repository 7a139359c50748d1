package processors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/server"
)

// fetchStep runs the fetch chain over the origin's body before the
// server stores it. The body's length is unknown afterwards, so the
// server stores it only once the whole chain ended cleanly: a corrupt
// or truncated input never becomes a stored object.
type fetchStep struct{ rp *Route }

func (f fetchStep) Prepare(*server.Fetch) bool { return true }

func (f fetchStep) Fetched(fx *server.Fetch) (server.Verdict, error) {
	resp := fx.Resp
	if resp.StatusCode != http.StatusOK {
		return server.Store, nil
	}
	c := f.rp.Chain(FetchSide, FormatOf(resp.Header), nil)
	if w := c.Warnings(); len(w) > 0 {
		f.rp.log.Warn("processor not placed", "tx", fx.Tx.ID, "key", fx.Key, "side", "fetch", "chain", c.String(), "processor", w[0].Name, "why", w[0].Why)
	}
	if len(c.Steps) == 0 {
		return server.Store, nil
	}
	body := f.rp.pipeline(fx.Ctx, fx.Tx, fx.Req, c, resp.Body)
	setCoding(resp.Header, c.Out())
	resp.Header.Del("Content-Length")
	weakETag(resp.Header)
	if n := resp.ContentLength; n >= 0 && n <= inMax {
		// A small body is transformed whole before the server sees it:
		// with its length known, concurrent misses share this fetch, and
		// a corrupt body is a 502 instead of a truncated 200.
		max := fx.Tx.Config().Storage.MaxObject
		b, err := io.ReadAll(io.LimitReader(body, max+1))
		if err != nil {
			resp.Body.Close()
			return server.Store, server.NewStatusError(http.StatusBadGateway, fmt.Errorf("fetch processors: %w", err))
		}
		if int64(len(b)) <= max {
			resp.Body.Close()
			resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			return server.Store, nil
		}
		body = io.MultiReader(bytes.NewReader(b), body)
	}
	resp.Body = &chainBody{Reader: body, c: resp.Body}
	resp.ContentLength = -1
	return server.Store, nil
}

type chainBody struct {
	io.Reader
	c io.Closer
}

func (b *chainBody) Close() error { return b.c.Close() }

// pipeline opens the chain's steps over src.
func (rp *Route) pipeline(ctx context.Context, tx *server.Txn, r *http.Request, c Chain, src io.Reader) io.Reader {
	max := rp.cfg.BufferMax
	for _, s := range c.Steps {
		switch s.Name {
		case "gunzip":
			src = gunzipStage(src)
		case "unbrotli":
			src = unbrotliStage(src)
		case "gzip", "esi+gzip":
			src = gzipStage(src)
		case "brotli":
			src = brotliStage(src)
		case "buffer":
			src = bufferStage(max)(src)
		case "regex":
			src = regexStage(rp.subs, max)(src)
		case "esi":
			if s.Out == Text { // on delivery; on the fetch side a mark only
				src = esiStage(ctx, rp.include(tx, r), max)(src)
			}
		default:
			if proc := rp.procs[s.Name]; proc != nil {
				src = pluginStage(ctx, proc, s.Name)(src)
			}
		}
	}
	return src
}

// include fetches an ESI fragment as a self-request of tx: its own
// transaction, cache lookup and route; limits.max_depth bounds nesting.
func (rp *Route) include(tx *server.Txn, r *http.Request) Include {
	return func(ctx context.Context, src string) ([]byte, error) {
		u, err := r.URL.Parse(src)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://edgehost-self"+u.RequestURI(), nil)
		if err != nil {
			return nil, err
		}
		req.Host = r.Host
		if u.Host != "" {
			req.Host = u.Host
		}
		for _, k := range []string{"Cookie", "User-Agent", "Authorization"} {
			if v := r.Header.Values(k); len(v) > 0 {
				req.Header[k] = v
			}
		}
		req.Header.Set("Accept-Encoding", "gzip, br")
		req.Header.Set(server.HeaderDepth, strconv.Itoa(tx.Depth()))
		req.Header.Set(server.HeaderParent, tx.ID.String())
		resp, err := rp.p.client().Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		var body io.Reader = resp.Body
		switch FormatOf(resp.Header) {
		case Gzip:
			body = gunzipStage(body)
		case Br:
			body = unbrotliStage(body)
		}
		return readWhole(body, rp.cfg.BufferMax)
	}
}

// Wrap puts the delivery chain between the route's handler and the
// client. The chain is chosen when the header is written: it starts
// from the response's format and ends in what the client takes.
func (rp *Route) Wrap(tx *server.Txn, r *http.Request, w http.ResponseWriter) (http.ResponseWriter, func()) {
	dw := &deliverWriter{w: w, rp: rp, tx: tx, r: r, sink: Sink(r.Header.Get("Accept-Encoding"))}
	if rh := r.Header.Get("Range"); rh != "" && r.Method == http.MethodGet {
		// Range applies to the representation delivered: with delivery
		// processors the server sends it whole and the chain's output
		// is cut here.
		dw.rangeHdr, dw.ifRange = rh, r.Header.Get("If-Range")
		if len(rp.deliver) > 0 {
			r.Header.Del("Range")
			r.Header.Del("If-Range")
		}
	}
	return dw, dw.end
}

// deliverWriter is the response writer of a route with processors.
type deliverWriter struct {
	w    http.ResponseWriter
	rp   *Route
	tx   *server.Txn
	r    *http.Request
	sink []string

	rangeHdr, ifRange string

	wrote bool
	pass  bool  // no chain: straight to w
	chain Chain // the chain chosen at WriteHeader
	in    []byte
	pw    *io.PipeWriter // the chain's input once it streams
	done  chan struct{}
	sent  bool  // bytes went out (an error after that aborts)
	err   error // the chain's
}

func (d *deliverWriter) Header() http.Header { return d.w.Header() }

func (d *deliverWriter) Flush() {
	if f, ok := d.w.(http.Flusher); ok && d.pass {
		f.Flush()
	}
}

func (d *deliverWriter) WriteHeader(code int) {
	if d.wrote {
		return
	}
	d.wrote = true
	h := d.w.Header()
	if code != http.StatusOK {
		d.pass = true
		d.w.WriteHeader(code)
		return
	}
	start := FormatOf(h)
	c := d.rp.Chain(DeliverSide, start, d.sink)
	if w := c.Warnings(); len(w) > 0 {
		d.rp.log.Warn("processor not placed", "tx", d.tx.ID, "url", d.r.RequestURI, "side", "deliver", "chain", c.String(), "processor", w[0].Name, "why", w[0].Why)
		markUnplaced(h, w)
	}
	if start.Coding() != "identity" {
		// What is delivered depends on the client's Accept-Encoding.
		addVary(h, "Accept-Encoding")
	}
	if len(c.Steps) == 0 {
		d.pass = true
		d.w.WriteHeader(code)
		return
	}
	setCoding(h, c.Out())
	h.Del("Content-Length")
	h.Del("Accept-Ranges")
	weakETag(h)
	if d.r.Method == http.MethodHead {
		d.pass = true
		d.w.WriteHeader(code)
		return
	}
	d.chain = c
}

// run sends the chain's output. The status goes out with the first byte:
// a chain that fails before it (an ESI include without onerror, a
// corrupt body) is a 502, not a truncated 200. An output of up to
// outMax bytes goes out whole, with its Content-Length, in one write.
func (d *deliverWriter) run(out io.Reader, c Chain) error {
	if d.rangeHdr != "" && c.Out().Coding() == "identity" {
		return d.serveRange(out)
	}
	bp := outBuffers.Get().(*[]byte)
	defer outBuffers.Put(bp)
	buf := *bp
	n, err := 0, error(nil)
	for n < len(buf) && err == nil {
		var m int
		m, err = out.Read(buf[n:])
		n += m
	}
	switch {
	case err == io.EOF:
		d.sent = true
		d.w.Header().Set("Content-Length", strconv.Itoa(n))
		d.w.WriteHeader(http.StatusOK)
		_, err := d.w.Write(buf[:n])
		return ignoreWrite(err)
	case err != nil:
		d.badGateway(err)
		return nil
	}
	d.sent = true
	d.w.WriteHeader(http.StatusOK)
	if _, err := d.w.Write(buf[:n]); err != nil {
		return ignoreWrite(err)
	}
	for {
		n, err := out.Read(buf[:chunk])
		if n > 0 {
			if _, werr := d.w.Write(buf[:n]); werr != nil {
				return ignoreWrite(werr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// errClient is a write to the client that failed: the client went away,
// nothing to abort.
var errClient = errors.New("client write failed")

func ignoreWrite(err error) error {
	if err != nil {
		return errClient
	}
	return nil
}

// outMax is the largest output sent whole with a Content-Length; inMax
// the largest input that is run through the chain after the handler
// wrote it, without a goroutine.
const (
	outMax = 256 << 10
	inMax  = 1 << 20
)

var outBuffers = sync.Pool{New: func() any { b := make([]byte, outMax); return &b }}

func (d *deliverWriter) badGateway(err error) {
	h := d.w.Header()
	for _, k := range []string{"Content-Encoding", "Etag", "Last-Modified", "Vary", "Content-Type"} {
		h.Del(k)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	d.w.WriteHeader(http.StatusBadGateway)
	io.WriteString(d.w, "502 processors failed\n")
	d.rp.log.Warn("delivery chain failed", "tx", d.tx.ID, "url", d.r.RequestURI, "err", err)
	d.err = nil
	d.sent = true
}

// Write takes the body the handler sends: up to inMax bytes are kept
// and run through the chain once the handler is done (a hit's body comes
// in one write); past that, the chain runs beside the handler, fed
// through a pipe.
func (d *deliverWriter) Write(p []byte) (int, error) {
	if !d.wrote {
		d.WriteHeader(http.StatusOK)
	}
	if d.pass {
		return d.w.Write(p)
	}
	if d.pw == nil {
		if len(d.in)+len(p) <= inMax {
			d.in = append(d.in, p...)
			return len(p), nil
		}
		d.stream()
	}
	return d.pw.Write(p)
}

// stream starts the chain beside the handler and feeds it what was kept.
func (d *deliverWriter) stream() {
	pr, pw := io.Pipe()
	d.pw, d.done = pw, make(chan struct{})
	out := d.rp.pipeline(d.r.Context(), d.tx, d.r, d.chain, pr)
	go func() {
		defer close(d.done)
		d.err = d.run(out, d.chain)
		pr.CloseWithError(cmpErr(d.err, io.ErrClosedPipe))
	}()
	kept := d.in
	d.in = nil
	pw.Write(kept)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// end runs the chain over a kept body, or closes the chain's input and
// waits for its output; a chain that failed after bytes went out ends
// the connection uncleanly (RFC 9112 §8).
func (d *deliverWriter) end() {
	switch {
	case d.pass || !d.wrote || d.r.Method == http.MethodHead:
		return
	case d.pw == nil:
		d.err = d.run(d.rp.pipeline(d.r.Context(), d.tx, d.r, d.chain, bytes.NewReader(d.in)), d.chain)
	default:
		d.pw.Close()
		<-d.done
	}
	if d.err != nil && d.err != errClient && d.sent && d.r.Context().Err() == nil {
		d.tx.Error = d.err.Error()
		panic(http.ErrAbortHandler)
	}
}

// markUnplaced says in Cache-Status that a processor found no place.
func markUnplaced(h http.Header, unplaced []Unplaced) {
	cs := h.Get("Cache-Status")
	if cs == "" || strings.Contains(cs, "detail=") {
		return
	}
	names := make([]string, len(unplaced))
	for i, u := range unplaced {
		names[i] = u.Name
	}
	h.Set("Cache-Status", cs+`; detail="processor not placed: `+strings.Join(names, " ")+`"`)
}

func addVary(h http.Header, field string) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); strings.EqualFold(f, field) || f == "*" {
				return
			}
		}
	}
	h.Add("Vary", field)
}

// serveRange cuts the client's Range out of the chain's whole output
// (at most buffer_max; past that the whole representation is sent, as
// a server may ignore Range, RFC 9110 §14.2).
func (d *deliverWriter) serveRange(out io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(out, d.rp.cfg.BufferMax+1))
	h := d.w.Header()
	if err != nil {
		d.badGateway(err)
		return nil
	}
	d.sent = true
	if int64(len(b)) > d.rp.cfg.BufferMax {
		d.w.WriteHeader(http.StatusOK)
		if _, err := d.w.Write(b); err != nil {
			return err
		}
		_, err = io.Copy(d.w, out)
		return err
	}
	rh := http.Header{"If-Range": {d.ifRange}}
	if d.ifRange == "" || httpcache.IfRangeMatches(rh, h.Get("Etag"), time.Time{}) {
		ranges, perr := httpcache.ParseRange(d.rangeHdr, int64(len(b)))
		switch {
		case perr == nil:
			h.Set("Accept-Ranges", "bytes")
			return httpcache.ServeRanges(d.w, h, ranges, int64(len(b)), h.Get("Content-Type"), bytes.NewReader(b), false)
		case errors.Is(perr, httpcache.ErrUnsatisfiable):
			httpcache.WriteUnsatisfiable(d.w, int64(len(b)))
			return nil
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	d.w.WriteHeader(http.StatusOK)
	_, err = d.w.Write(b)
	return err
}
