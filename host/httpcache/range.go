package httpcache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
)

// ByteRange is one resolved byte range: Start and End are inclusive offsets
// into the representation, 0 <= Start <= End < size.
type ByteRange struct{ Start, End int64 }

// Len is the number of bytes in the range.
func (r ByteRange) Len() int64 { return r.End - r.Start + 1 }

// Errors from ParseRange.
var (
	// ErrUnsatisfiable: the Range is valid but no range overlaps the
	// representation (RFC 9110 §14.1.1); answer 416 with
	// "Content-Range: bytes */size" (WriteUnsatisfiable).
	ErrUnsatisfiable = errors.New("httpcache: range not satisfiable")
	// ErrInvalidRange: the Range field is syntactically invalid, uses a
	// unit other than bytes, or trips a limit; ignore it and serve the
	// whole representation with 200 (RFC 9110 §14.2: a server MAY ignore
	// Range).
	ErrInvalidRange = errors.New("httpcache: invalid range")
)

// MaxRanges is the most range-specs ParseRange accepts in one field; more
// is treated as abuse (RFC 9110 §14.2, §17.15) and the field is ignored.
const MaxRanges = 100

// ParseRange parses a Range field value (RFC 9110 §14.1.2, §14.2) against a
// representation of size bytes. See AppendRange.
func ParseRange(header string, size int64) ([]ByteRange, error) {
	rs, err := AppendRange(nil, header, size)
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// AppendRange parses a Range field value and appends the resolved ranges to
// dst (pass a reused slice for no allocation).
//
//   - The unit is "bytes", compared case-insensitively (§14.1); any other
//     unit, a missing "=", an empty range set, a malformed range-spec, or a
//     last-pos before its first-pos (§14.1.1) → ErrInvalidRange.
//   - Empty list elements and whitespace around commas are accepted
//     (§5.6.1).
//   - "first-last" past the end is clipped to size-1, "first-" runs to the
//     end, "-n" is the last n bytes (the whole representation if it is
//     shorter). Ranges with first-pos >= size and "-0" are unsatisfiable
//     and dropped; if none is left → ErrUnsatisfiable (→ 416).
//   - A zero-length representation has no byte to send: a suffix range
//     (satisfiable by §14.1.1 but empty) makes the field ignored
//     (ErrInvalidRange → 200 with the empty body); other ranges are
//     unsatisfiable.
//   - DoS guards (§14.2, §17.15): more than MaxRanges range-specs →
//     ErrInvalidRange. Ranges that overlap or are out of ascending order are
//     sorted and coalesced (overlapping or adjacent ones merged), so a
//     response never carries more bytes than the representation plus part
//     headers. Ascending disjoint ranges keep the client's order.
//
// On error dst is returned with its original length.
func AppendRange(dst []ByteRange, header string, size int64) ([]ByteRange, error) {
	base := len(dst)
	s := trimOWS(header)
	eq := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			eq = i
			break
		}
	}
	if eq < 0 || !equalFoldASCII(trimOWS(s[:eq]), "bytes") {
		return dst, ErrInvalidRange
	}
	s = s[eq+1:]
	specs := 0
	emptySuffix := false
	for s != "" {
		var spec string
		spec, s = cutComma(s)
		spec = trimOWS(spec)
		if spec == "" {
			continue
		}
		specs++
		if specs > MaxRanges {
			return dst[:base], ErrInvalidRange
		}
		if spec[0] == '-' {
			n, ok := parseDigits(spec[1:])
			if !ok {
				return dst[:base], ErrInvalidRange
			}
			switch {
			case n == 0:
				// "-0" is unsatisfiable (§14.1.1)
			case size == 0:
				emptySuffix = true
			default:
				dst = append(dst, ByteRange{Start: max(size-n, 0), End: size - 1})
			}
			continue
		}
		dash := -1
		for i := 0; i < len(spec); i++ {
			if spec[i] == '-' {
				dash = i
				break
			}
		}
		if dash < 0 {
			return dst[:base], ErrInvalidRange
		}
		first, ok := parseDigits(trimOWS(spec[:dash]))
		if !ok {
			return dst[:base], ErrInvalidRange
		}
		last := int64(-1)
		if l := trimOWS(spec[dash+1:]); l != "" {
			if last, ok = parseDigits(l); !ok || last < first {
				return dst[:base], ErrInvalidRange
			}
		}
		if first >= size {
			continue // unsatisfiable
		}
		if last < 0 || last >= size {
			last = size - 1
		}
		dst = append(dst, ByteRange{Start: first, End: last})
	}
	if specs == 0 {
		return dst[:base], ErrInvalidRange
	}
	if len(dst) == base {
		if emptySuffix {
			return dst, ErrInvalidRange
		}
		return dst, ErrUnsatisfiable
	}
	return coalesce(dst, base), nil
}

// coalesce leaves dst[base:] as it is when its ranges ascend without
// overlapping, and otherwise sorts them and merges overlapping or adjacent
// ones (RFC 9110 §14.2 allows a server to coalesce).
func coalesce(dst []ByteRange, base int) []ByteRange {
	rs := dst[base:]
	ordered := true
	for i := 1; i < len(rs); i++ {
		if rs[i].Start <= rs[i-1].End {
			ordered = false
			break
		}
	}
	if ordered {
		return dst
	}
	slices.SortFunc(rs, func(a, b ByteRange) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		cur := &out[len(out)-1]
		if r.Start <= cur.End+1 {
			cur.End = max(cur.End, r.End)
			continue
		}
		out = append(out, r)
	}
	return dst[:base+len(out)]
}

// parseDigits parses 1*DIGIT, saturating at the largest int64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			n = 1<<63 - 1
			continue
		}
		n = n*10 + d
	}
	return n, true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// ServeRanges writes a 206 Partial Content response (RFC 9110 §15.3.7) for
// ranges of a representation of size bytes read from r.
//
// h holds the response's header fields already decided (it may be
// w.Header() itself, or nil); they are copied into w.Header(). ServeRanges
// then sets Content-Length, and for one range Content-Range (§14.4) and
// Content-Type if h has none and contentType is not empty; for
// several, Content-Type "multipart/byteranges; boundary=..." with a random
// boundary, each part carrying contentType (when not empty) and its
// Content-Range (§14.6), and no top-level Content-Range. The length of the
// whole body is computed before anything is written. With headOnly only the
// header is written. Note that RFC 9110 §14.2 defines range handling for
// GET only and asks a server to ignore Range on other methods, HEAD
// included; headOnly exists for a state machine that mirrors a GET's 206 on
// HEAD as net/http's ServeContent does.
//
// Ranges must be resolved against size (as ParseRange returns them), else
// ServeRanges writes nothing and returns an error wrapping ErrInvalidRange.
// A read error or a short read after the header went out is returned; the
// caller must then abort the connection, since the declared length cannot
// be met.
func ServeRanges(w http.ResponseWriter, h http.Header, ranges []ByteRange, size int64, contentType string, r io.ReaderAt, headOnly bool) error {
	if len(ranges) == 0 {
		return fmt.Errorf("serve ranges: no range: %w", ErrInvalidRange)
	}
	for _, br := range ranges {
		if br.Start < 0 || br.Start > br.End || br.End >= size {
			return fmt.Errorf("serve ranges: range %d-%d outside 0-%d: %w", br.Start, br.End, size-1, ErrInvalidRange)
		}
	}
	dst := w.Header()
	for k, v := range h {
		dst[k] = v
	}
	if len(ranges) == 1 {
		br := ranges[0]
		// One string and one backing array for both values.
		var b [80]byte
		cr := appendContentRange(b[:0], br, size)
		k := len(cr)
		both := string(strconv.AppendInt(cr, br.Len(), 10))
		vals := make([]string, 2)
		vals[0], vals[1] = both[:k], both[k:]
		dst["Content-Range"] = vals[0:1:1]
		dst["Content-Length"] = vals[1:2:2]
		if _, ok := dst["Content-Type"]; !ok && contentType != "" {
			dst["Content-Type"] = []string{contentType}
		}
		w.WriteHeader(http.StatusPartialContent)
		if headOnly {
			return nil
		}
		return copyRange(w, r, br)
	}

	var rb [16]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return fmt.Errorf("serve ranges: boundary: %w", err)
	}
	boundary := hex.EncodeToString(rb[:])
	// The body is, per part, "\r\n--B\r\n" (no leading CRLF on the first)
	// + part header + "\r\n" + bytes, then "\r\n--B--\r\n" (RFC 2046
	// §5.1.1, the framing mime/multipart writes and reads).
	var total int64
	var hdr []byte
	for i, br := range ranges {
		hdr = appendPartHeader(hdr[:0], i == 0, boundary, contentType, br, size)
		total += int64(len(hdr)) + br.Len()
	}
	total += int64(len(boundary)) + 8 // "\r\n--" + B + "--\r\n"
	delete(dst, "Content-Range")
	dst["Content-Type"] = []string{"multipart/byteranges; boundary=" + boundary}
	dst["Content-Length"] = []string{strconv.FormatInt(total, 10)}
	w.WriteHeader(http.StatusPartialContent)
	if headOnly {
		return nil
	}
	for i, br := range ranges {
		hdr = appendPartHeader(hdr[:0], i == 0, boundary, contentType, br, size)
		if _, err := w.Write(hdr); err != nil {
			return fmt.Errorf("serve ranges: %w", err)
		}
		if err := copyRange(w, r, br); err != nil {
			return err
		}
	}
	hdr = append(hdr[:0], "\r\n--"...)
	hdr = append(hdr, boundary...)
	hdr = append(hdr, "--\r\n"...)
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("serve ranges: %w", err)
	}
	return nil
}

func appendPartHeader(b []byte, first bool, boundary, contentType string, br ByteRange, size int64) []byte {
	if !first {
		b = append(b, "\r\n"...)
	}
	b = append(b, "--"...)
	b = append(b, boundary...)
	b = append(b, "\r\n"...)
	if contentType != "" {
		b = append(b, "Content-Type: "...)
		b = append(b, contentType...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Range: "...)
	b = appendContentRange(b, br, size)
	return append(b, "\r\n\r\n"...)
}

// AppendContentRange appends a Content-Range value "bytes first-last/size"
// (RFC 9110 §14.4).
func appendContentRange(b []byte, br ByteRange, size int64) []byte {
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, br.Start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, br.End, 10)
	b = append(b, '/')
	return strconv.AppendInt(b, size, 10)
}

// copyBufs holds the buffers copyRange reads into: a 206 on the hit path
// should not allocate 32 KiB as io.Copy would.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyRange(w io.Writer, r io.ReaderAt, br ByteRange) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	off, remain := br.Start, br.Len()
	for remain > 0 {
		n := int(min(int64(len(buf)), remain))
		m, err := r.ReadAt(buf[:n], off)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return fmt.Errorf("serve ranges: %w", werr)
			}
			off += int64(m)
			remain -= int64(m)
		}
		switch {
		case m == n && (err == nil || err == io.EOF):
			continue
		case err == nil || err == io.EOF:
			// io.ReaderAt returns an error with a short read; EOF here
			// means the body is shorter than the size we announced.
			return fmt.Errorf("serve ranges: bytes %d-%d: short read at %d: %w", br.Start, br.End, off, io.ErrUnexpectedEOF)
		default:
			return fmt.Errorf("serve ranges: bytes %d-%d: %w", br.Start, br.End, err)
		}
	}
	return nil
}

// WriteUnsatisfiable answers 416 Range Not Satisfiable with
// "Content-Range: bytes */size" (RFC 9110 §15.5.17) and an empty body.
// Content-Type and Content-Encoding already set are dropped: they would
// describe a body that is not sent.
func WriteUnsatisfiable(w http.ResponseWriter, size int64) {
	h := w.Header()
	h["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
	h["Content-Length"] = []string{"0"}
	delete(h, "Content-Type")
	delete(h, "Content-Encoding")
	w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
}
