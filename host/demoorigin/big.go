package demoorigin

import (
	"compress/gzip"
	"net/http"
	"strconv"
	"time"
)

// maxBigSize bounds /big/N; nothing is allocated per object, so it is large.
const maxBigSize = 1 << 40

// bigValidators returns the ETag and Last-Modified of /big/N at a version:
// both change with the version, so a cache that mixes versions can tell.
func bigValidators(n int64, version int) (string, time.Time) {
	etag := `"big-` + strconv.FormatInt(n, 10) + "-v" + strconv.Itoa(version) + `"`
	return etag, fixedLastModified.Add(time.Duration(version) * time.Hour)
}

// serveBig answers /big/N: N bytes, byte i = BigByte(i, version), generated
// while written. Validators change with the version (POST /admin/version);
// single byte ranges with If-Range are served (206, or 416 with
// Content-Range: bytes */N); HEAD answers the headers alone.
//
// Query switches, for eligibility tests of the slicer:
//   - nolength=1: no Content-Length (chunked) and Range ignored;
//   - gzip=1: Content-Encoding: gzip (a real gzip stream of the bytes,
//     chunked, Range ignored);
//   - noetag=1, nolastmod=1: leave out a validator.
func (o *Origin) serveBig(w http.ResponseWriter, r *http.Request, arg string) {
	n, err := parseSize(arg, maxBigSize)
	if err != nil {
		o.badRequest(w, epBig, "/big/N: N is a size such as 256m or 1g")
		return
	}
	version := o.Version()
	etag, lastMod := bigValidators(n, version)
	q := r.URL.Query()
	if q.Get("noetag") == "1" {
		etag = ""
	}
	if q.Get("nolastmod") == "1" {
		lastMod = time.Time{}
	}
	noLength, gz := q.Get("nolength") == "1", q.Get("gzip") == "1"

	h := w.Header()
	defaultCC(h, hvMaxAge)
	if etag != "" {
		h["Etag"] = []string{etag}
	}
	if !lastMod.IsZero() {
		h["Last-Modified"] = []string{lastMod.Format(http.TimeFormat)}
	}
	if notModified(r, etag, lastMod) {
		o.answerNotModified(w)
		return
	}
	h["Content-Type"] = hvOctet
	stream := uint64(version)

	if noLength || gz {
		if gz {
			h["Content-Encoding"] = hvGzip
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		// A flush before the first byte makes net/http commit to chunked
		// encoding even for a small body.
		_ = http.NewResponseController(w).Flush()
		if !gz {
			o.stream(w, epBig, 0, n, stream)
			return
		}
		zw, _ := gzip.NewWriterLevel(countingWriter{o: o, w: w, ep: epBig}, gzip.BestSpeed)
		bp := chunkPool.Get().(*[]byte)
		defer chunkPool.Put(bp)
		buf := *bp
		for off := int64(0); off < n; {
			c := min(int64(len(buf)), n-off)
			fill(buf[:c], off, stream)
			if _, err := zw.Write(buf[:c]); err != nil {
				return
			}
			off += c
		}
		_ = zw.Close()
		return
	}

	h["Accept-Ranges"] = hvBytes
	start, length, code := int64(0), n, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && r.Method == http.MethodGet && rangeAllowed(r, etag, lastMod) {
		br, err := parseRange(rh, n)
		switch err {
		case nil:
			start, length, code = br.start, br.length(), http.StatusPartialContent
			h["Content-Range"] = []string{br.contentRange(n)}
		case ErrRangeUnsatisfiable:
			h["Content-Range"] = []string{"bytes */" + strconv.FormatInt(n, 10)}
			o.text(w, r, epBig, http.StatusRequestedRangeNotSatisfiable, "416 range not satisfiable\n")
			return
		}
	}
	h["Content-Length"] = []string{strconv.FormatInt(length, 10)}
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	o.stream(w, epBig, start, length, stream)
}

// countingWriter counts the bytes a wrapped writer (gzip) sends.
type countingWriter struct {
	o  *Origin
	w  http.ResponseWriter
	ep endpoint
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.o.countBytes(c.ep, n)
	return n, err
}
