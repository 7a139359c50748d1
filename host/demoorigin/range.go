package demoorigin

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors of the parsers in this file.
var (
	// ErrBadSize means a size in a path (/bytes/N, /big/N) is not a
	// number with an optional k, m or g suffix, or is out of bounds.
	ErrBadSize = errors.New("demoorigin: bad size")
	// ErrRangeIgnored means a Range header is malformed, not in bytes, or
	// asks for more than one range: RFC 9110 §14.2 lets a server ignore it
	// and send the whole representation, which this origin does.
	ErrRangeIgnored = errors.New("demoorigin: range ignored")
	// ErrRangeUnsatisfiable means a valid range lies past the end of the
	// representation: 416 with Content-Range: bytes */len (RFC 9110 §15.5.17).
	ErrRangeUnsatisfiable = errors.New("demoorigin: range not satisfiable")
)

// parseSize parses "1024", "1k", "28K", "256m", "1g" (binary multiples) up to
// max bytes.
func parseSize(s string, max int64) (int64, error) {
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	if s == "" || len(s) > 18 {
		return 0, ErrBadSize
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, ErrBadSize
		}
		n = n*10 + int64(c-'0')
	}
	if n > max/mult {
		return 0, ErrBadSize
	}
	return n * mult, nil
}

// byteRange is an inclusive range of offsets, already clamped to the size.
type byteRange struct {
	start, end int64
}

func (br byteRange) length() int64 { return br.end - br.start + 1 }

func (br byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(br.start, 10) + "-" + strconv.FormatInt(br.end, 10) + "/" + strconv.FormatInt(size, 10)
}

// parseRange parses a Range header (RFC 9110 §14.1.2) against a
// representation of size bytes. Only a single range is served.
func parseRange(h string, size int64) (byteRange, error) {
	unit, set, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return byteRange{}, ErrRangeIgnored
	}
	spec := strings.TrimSpace(set)
	if strings.Contains(spec, ",") {
		return byteRange{}, ErrRangeIgnored
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return byteRange{}, ErrRangeIgnored
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// suffix-range: the last n bytes.
		n, err := parseDigits(last)
		if err != nil {
			return byteRange{}, ErrRangeIgnored
		}
		if n == 0 || size == 0 {
			return byteRange{}, ErrRangeUnsatisfiable
		}
		if n > size {
			n = size
		}
		return byteRange{start: size - n, end: size - 1}, nil
	}
	start, err := parseDigits(first)
	if err != nil {
		return byteRange{}, ErrRangeIgnored
	}
	end := int64(-1)
	if last != "" {
		if end, err = parseDigits(last); err != nil || end < start {
			return byteRange{}, ErrRangeIgnored
		}
	}
	if start >= size {
		return byteRange{}, ErrRangeUnsatisfiable
	}
	if end < 0 || end >= size {
		end = size - 1
	}
	return byteRange{start: start, end: end}, nil
}

// parseDigits parses a non-empty run of ASCII digits that fits an int64.
func parseDigits(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, ErrRangeIgnored
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, ErrRangeIgnored
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// notModified evaluates If-None-Match, then (only without it)
// If-Modified-Since, for a GET or HEAD (RFC 9110 §13.2.2 steps 3 and 4).
func notModified(r *http.Request, etag string, lastMod time.Time) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etagListMatch(inm, etag, false)
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && !lastMod.IsZero() {
		t, err := http.ParseTime(ims)
		return err == nil && !lastMod.Truncate(time.Second).After(t)
	}
	return false
}

// rangeAllowed evaluates If-Range (RFC 9110 §13.1.5): a strong ETag match
// or an exact Last-Modified date, else the Range is ignored.
func rangeAllowed(r *http.Request, etag string, lastMod time.Time) bool {
	ir := r.Header.Get("If-Range")
	if ir == "" {
		return true
	}
	ir = strings.TrimSpace(ir)
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		return etag != "" && ir == etag && !strings.HasPrefix(etag, "W/")
	}
	t, err := http.ParseTime(ir)
	return err == nil && !lastMod.IsZero() && t.Equal(lastMod.Truncate(time.Second))
}

// etagListMatch reports whether a comma-separated list of entity tags (or
// "*") matches etag; weak comparison unless strong is set.
func etagListMatch(list, etag string, strong bool) bool {
	if etag == "" {
		return false
	}
	if strings.TrimSpace(list) == "*" {
		return true
	}
	want := etag
	if !strong {
		want = strings.TrimPrefix(want, "W/")
	}
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if !strong {
			item = strings.TrimPrefix(item, "W/")
		}
		if item == want {
			return true
		}
	}
	return false
}
