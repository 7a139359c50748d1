package demoorigin

import (
	"bufio"
	"net/http"
	"strconv"
	"time"
)

// Bounds of the fault endpoints, so that a test that forgets a stall cannot
// hold a handler for ever.
const (
	maxDelay     = 5 * time.Minute
	defaultStall = time.Minute
	maxTruncate  = 64 << 20
)

// serveStatus answers /status/CODE with that status and a short body
// (none where the code allows none).
func (o *Origin) serveStatus(w http.ResponseWriter, r *http.Request, arg string) {
	code, err := strconv.Atoi(arg)
	if err != nil || code < 200 || code > 999 {
		o.badRequest(w, epStatus, "/status/CODE: CODE is 200..999")
		return
	}
	if code == http.StatusNotModified {
		o.answerNotModified(w)
		return
	}
	o.text(w, r, epStatus, code, "status "+arg+"\n")
}

// serveDelay answers /delay/MS after sleeping MS milliseconds before the
// headers (for first-byte timeouts and coalescing tests).
func (o *Origin) serveDelay(w http.ResponseWriter, r *http.Request, arg string) {
	ms, err := strconv.Atoi(arg)
	if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxDelay {
		o.badRequest(w, epDelay, "/delay/MS: MS is 0..300000")
		return
	}
	if !o.sleep(r.Context(), time.Duration(ms)*time.Millisecond) {
		return
	}
	o.text(w, r, epDelay, http.StatusOK, "delayed "+arg+" ms\n")
}

// serveStall answers /stall[?size=N&send=M&for=D]: headers promising N bytes
// (default 1m), the first M of them (default 1k, generated like /bytes/N),
// then nothing until the client leaves, Close is called, or D passes
// (default 1m; a Go duration), when the connection is dropped (for
// between-bytes timeouts).
func (o *Origin) serveStall(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, send, stall := int64(1<<20), int64(1<<10), defaultStall
	var err error
	if v := q.Get("size"); v != "" {
		if size, err = parseSize(v, maxBytesSize); err != nil {
			o.badRequest(w, epStall, "size is a size such as 1m")
			return
		}
	}
	if v := q.Get("send"); v != "" {
		if send, err = parseSize(v, maxBytesSize); err != nil {
			o.badRequest(w, epStall, "send is a size such as 1k")
			return
		}
	}
	if v := q.Get("for"); v != "" {
		if stall, err = time.ParseDuration(v); err != nil || stall < 0 || stall > maxDelay {
			o.badRequest(w, epStall, "for is a duration such as 30s (at most 5m)")
			return
		}
	}
	send = min(send, size)
	h := w.Header()
	h["Content-Type"] = hvOctet
	h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	o.stream(w, epStall, 0, send, streamBytes)
	_ = http.NewResponseController(w).Flush()
	o.sleep(r.Context(), stall)
	// The promised length was not sent: make net/http drop the connection
	// instead of reporting a handler error.
	panic(http.ErrAbortHandler)
}

// serveTruncate answers /truncate/N: Content-Length N, then N/2 bytes and
// the connection closed (an origin dying mid-body). It takes the connection
// over (Hijack) to write the response itself; where that is not possible
// (HTTP/2) it aborts the handler, which resets the stream.
func (o *Origin) serveTruncate(w http.ResponseWriter, r *http.Request, arg string) {
	n, err := parseSize(arg, maxTruncate)
	if err != nil {
		o.badRequest(w, epTruncate, "/truncate/N: N is a size up to 64m")
		return
	}
	half := n / 2
	body := make([]byte, half)
	fill(body, 0, streamBytes)
	h := w.Header()
	h["Content-Type"] = hvOctet
	h["Content-Length"] = []string{strconv.FormatInt(n, 10)}

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_ = o.write(w, epTruncate, body)
			_ = http.NewResponseController(w).Flush()
		}
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	writeRawHead(brw.Writer, r.ProtoAtLeast(1, 1), h)
	if r.Method != http.MethodHead {
		if err := brw.Flush(); err != nil {
			return
		}
		nw, _ := conn.Write(body)
		o.countBytes(epTruncate, nw)
		return
	}
	_ = brw.Flush()
}

// writeRawHead writes a 200 status line and headers on a hijacked
// connection.
func writeRawHead(bw *bufio.Writer, http11 bool, h http.Header) {
	if http11 {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
	} else {
		bw.WriteString("HTTP/1.0 200 OK\r\n")
	}
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	_ = h.Write(bw)
	bw.WriteString("\r\n")
}
