package httpcache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	type br = ByteRange
	tests := []struct {
		name   string
		header string
		size   int64
		want   []ByteRange
		err    error
	}{
		{"first-last", "bytes=0-99", 1000, []br{{0, 99}}, nil},
		{"open", "bytes=500-", 1000, []br{{500, 999}}, nil},
		{"suffix", "bytes=-50", 1000, []br{{950, 999}}, nil},
		// §14.1.1: suffix longer than the representation → all of it.
		{"long suffix", "bytes=-5000", 1000, []br{{0, 999}}, nil},
		// §14.1.1: last-pos past the end is clipped.
		{"clip", "bytes=900-5000", 1000, []br{{900, 999}}, nil},
		{"last byte", "bytes=999-999", 1000, []br{{999, 999}}, nil},
		{"ascending", "bytes=0-9,20-29, 40-49", 1000, []br{{0, 9}, {20, 29}, {40, 49}}, nil},
		// §14.1: the unit is case-insensitive; §5.6.1: empty elements and
		// OWS are fine.
		{"unit case", "Bytes=0-1", 10, []br{{0, 1}}, nil},
		{"empty elements", "bytes= ,0-1,, 3-4 ,", 10, []br{{0, 1}, {3, 4}}, nil},
		{"spaces around dash", "bytes= 1 - 2", 10, []br{{1, 2}}, nil},
		// §14.2: overlapping or unordered ranges are coalesced.
		{"overlap", "bytes=0-99, 200-, -50", 1000, []br{{0, 99}, {200, 999}}, nil},
		{"unordered", "bytes=20-29,0-9", 1000, []br{{0, 9}, {20, 29}}, nil},
		{"adjacent after sort", "bytes=10-19,0-9", 1000, []br{{0, 19}}, nil},
		{"same twice", "bytes=0-9,0-9", 1000, []br{{0, 9}}, nil},
		{"contained", "bytes=0-99,10-20,5-", 1000, []br{{0, 999}}, nil},
		// §14.1.1: unsatisfiable ranges are dropped ...
		{"partly unsatisfiable", "bytes=0-1, 5000-6000", 1000, []br{{0, 1}}, nil},
		// ... and if none remains → 416.
		{"unsatisfiable", "bytes=1000-", 1000, nil, ErrUnsatisfiable},
		{"suffix zero", "bytes=-0", 1000, nil, ErrUnsatisfiable},
		{"all past end", "bytes=2000-2001, 3000-", 1000, nil, ErrUnsatisfiable},
		{"empty repr", "bytes=0-", 0, nil, ErrUnsatisfiable},
		// A zero-length representation has nothing to send for a suffix.
		{"empty repr suffix", "bytes=-10", 0, nil, ErrInvalidRange},
		// Invalid → ignore the field (serve 200).
		{"no unit", "0-99", 1000, nil, ErrInvalidRange},
		{"other unit", "items=0-9", 1000, nil, ErrInvalidRange},
		{"empty set", "bytes=", 1000, nil, ErrInvalidRange},
		{"only commas", "bytes= , ,", 1000, nil, ErrInvalidRange},
		{"no dash", "bytes=5", 1000, nil, ErrInvalidRange},
		{"last < first", "bytes=10-5", 1000, nil, ErrInvalidRange},
		{"letters", "bytes=a-b", 1000, nil, ErrInvalidRange},
		{"negative", "bytes=--5", 1000, nil, ErrInvalidRange},
		{"plus", "bytes=+1-2", 1000, nil, ErrInvalidRange},
		{"one bad of two", "bytes=0-1,x", 1000, nil, ErrInvalidRange},
		{"huge first", "bytes=99999999999999999999999-", 1000, nil, ErrUnsatisfiable},
		{"huge last", "bytes=0-99999999999999999999999", 1000, []br{{0, 999}}, nil},
		{"huge suffix", "bytes=-99999999999999999999999", 1000, []br{{0, 999}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRange(tt.header, tt.size)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("ParseRange(%q, %d) error = %v, want %v", tt.header, tt.size, err, tt.err)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRange(%q, %d) = %v, want %v", tt.header, tt.size, got, tt.want)
			}
		})
	}
}

func TestParseRangeLimit(t *testing.T) {
	// §14.2 / §17.15: MaxRanges specs are fine, one more is abuse.
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range MaxRanges {
		fmt.Fprintf(&b, "%d-%d,", i*10, i*10+1)
	}
	rs, err := ParseRange(b.String(), 10000)
	if err != nil || len(rs) != MaxRanges {
		t.Fatalf("%d ranges: got %d, %v", MaxRanges, len(rs), err)
	}
	b.WriteString("5000-5001")
	if _, err := ParseRange(b.String(), 10000); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("%d ranges: err = %v, want ErrInvalidRange", MaxRanges+1, err)
	}
	// 100 overlapping copies of the whole never amplify the response.
	rs, err = ParseRange("bytes="+strings.Repeat("0-,", MaxRanges), 10000)
	if err != nil || len(rs) != 1 {
		t.Fatalf("overlapping: %v, %v", rs, err)
	}
}

func TestAppendRangeNoAlloc(t *testing.T) {
	buf := make([]ByteRange, 0, 4)
	if n := testing.AllocsPerRun(100, func() {
		rs, err := AppendRange(buf[:0], "bytes=0-99, 200-, -50", 1000)
		if err != nil || len(rs) != 2 {
			t.Fatal(rs, err)
		}
	}); n != 0 {
		t.Errorf("AppendRange allocates %v times", n)
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99, 200-, -50", "bytes=-0", "bytes=5-1", "Bytes= ,1-", "bytes=0-0,0-0,1-1", "items=1-2"} {
		f.Add(s, int64(1000))
	}
	f.Add("bytes=-5", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		rs, err := ParseRange(h, size)
		if err != nil {
			if !errors.Is(err, ErrInvalidRange) && !errors.Is(err, ErrUnsatisfiable) {
				t.Fatalf("unexpected error %v", err)
			}
			if rs != nil {
				t.Fatalf("ranges %v with error", rs)
			}
			return
		}
		if len(rs) == 0 || len(rs) > MaxRanges {
			t.Fatalf("%d ranges", len(rs))
		}
		var total int64
		for i, r := range rs {
			if r.Start < 0 || r.Start > r.End || r.End >= size {
				t.Fatalf("range %v outside [0,%d)", r, size)
			}
			if i > 0 && r.Start <= rs[i-1].End {
				t.Fatalf("ranges overlap or are unordered: %v", rs)
			}
			total += r.Len()
		}
		if total > size {
			t.Fatalf("ranges cover %d bytes of %d", total, size)
		}
	})
}

func TestServeRangesSingle(t *testing.T) {
	body := []byte("0123456789abcdefghij")
	for _, head := range []bool{false, true} {
		rec := httptest.NewRecorder()
		h := http.Header{"Etag": {`"v1"`}, "Content-Type": {"text/plain"}}
		err := ServeRanges(rec, h, []ByteRange{{5, 9}}, int64(len(body)), "text/plain", bytes.NewReader(body), head)
		if err != nil {
			t.Fatal(err)
		}
		res := rec.Result()
		if res.StatusCode != 206 {
			t.Errorf("status %d", res.StatusCode)
		}
		// §14.4
		if got, want := res.Header.Get("Content-Range"), "bytes 5-9/20"; got != want {
			t.Errorf("Content-Range %q, want %q", got, want)
		}
		if got, want := res.Header.Get("Content-Length"), "5"; got != want {
			t.Errorf("Content-Length %q, want %q", got, want)
		}
		if got, want := res.Header.Get("Etag"), `"v1"`; got != want {
			t.Errorf("Etag %q, want %q", got, want)
		}
		want := "56789"
		if head {
			want = ""
		}
		if got := rec.Body.String(); got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	}
}

func TestServeRangesMultipart(t *testing.T) {
	body := make([]byte, 5000)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	ranges, err := ParseRange("bytes=0-99, 1000-1049, -10", int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"image/png", ""} {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Range", "stale")
		rec.Header().Set("Content-Type", "image/png")
		if err := ServeRanges(rec, rec.Header(), ranges, int64(len(body)), ct, bytes.NewReader(body), false); err != nil {
			t.Fatal(err)
		}
		res := rec.Result()
		if res.StatusCode != 206 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if cr := res.Header.Get("Content-Range"); cr != "" {
			t.Errorf("top-level Content-Range %q in a multipart response (§14.6)", cr)
		}
		cl, _ := strconv.Atoi(res.Header.Get("Content-Length"))
		if cl != rec.Body.Len() {
			t.Errorf("Content-Length %d, body %d bytes", cl, rec.Body.Len())
		}
		mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" || params["boundary"] == "" {
			t.Fatalf("Content-Type %q: %v", res.Header.Get("Content-Type"), err)
		}
		mr := multipart.NewReader(rec.Body, params["boundary"])
		for i, r := range ranges {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			if got, want := p.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", r.Start, r.End, len(body)); got != want {
				t.Errorf("part %d Content-Range %q, want %q", i, got, want)
			}
			if got := p.Header.Get("Content-Type"); got != ct {
				t.Errorf("part %d Content-Type %q, want %q", i, got, ct)
			}
			data, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, body[r.Start:r.End+1]) {
				t.Errorf("part %d: wrong bytes", i)
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("after the last part: %v, want EOF", err)
		}
	}
}

func TestServeRangesMultipartHead(t *testing.T) {
	body := []byte("0123456789")
	rs := []ByteRange{{0, 1}, {5, 6}}
	get := httptest.NewRecorder()
	if err := ServeRanges(get, nil, rs, 10, "text/plain", bytes.NewReader(body), false); err != nil {
		t.Fatal(err)
	}
	head := httptest.NewRecorder()
	if err := ServeRanges(head, nil, rs, 10, "text/plain", bytes.NewReader(body), true); err != nil {
		t.Fatal(err)
	}
	if head.Body.Len() != 0 {
		t.Errorf("HEAD wrote a body")
	}
	// The boundary is random, so the lengths agree but not the headers.
	if g, h := get.Header().Get("Content-Length"), head.Header().Get("Content-Length"); g != h {
		t.Errorf("GET Content-Length %s, HEAD %s", g, h)
	}
}

func TestServeRangesErrors(t *testing.T) {
	body := []byte("0123456789")
	for _, rs := range [][]ByteRange{nil, {{5, 10}}, {{-1, 2}}, {{3, 2}}} {
		rec := httptest.NewRecorder()
		err := ServeRanges(rec, nil, rs, 10, "", bytes.NewReader(body), false)
		if !errors.Is(err, ErrInvalidRange) {
			t.Errorf("%v: err = %v, want ErrInvalidRange", rs, err)
		}
		if rec.Code != 200 || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			t.Errorf("%v: something was written", rs)
		}
	}
	// A reader shorter than the declared size: the error says so.
	rec := httptest.NewRecorder()
	err := ServeRanges(rec, nil, []ByteRange{{0, 19}}, 20, "", bytes.NewReader(body), false)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: err = %v", err)
	}
}

func TestWriteUnsatisfiable(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "text/plain")
	WriteUnsatisfiable(rec, 1234)
	res := rec.Result()
	// §15.5.17
	if res.StatusCode != 416 || res.Header.Get("Content-Range") != "bytes */1234" || res.Header.Get("Content-Type") != "" || rec.Body.Len() != 0 {
		t.Errorf("got %d %v %q", res.StatusCode, res.Header, rec.Body.String())
	}
}

// TestServeRangesOverHTTP drives ParseRange and ServeRanges through a real
// server and client, as the state machine will.
func TestServeRangesOverHTTP(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size := int64(len(body))
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Etag", `"v1"`)
		rs, err := ParseRange(r.Header.Get("Range"), size)
		switch {
		case r.Header.Get("Range") == "" || errors.Is(err, ErrInvalidRange) || !IfRangeMatches(r.Header, `"v1"`, time.Time{}):
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		case errors.Is(err, ErrUnsatisfiable):
			WriteUnsatisfiable(w, size)
		default:
			if err := ServeRanges(w, nil, rs, size, "text/plain", bytes.NewReader(body), r.Method == http.MethodHead); err != nil {
				t.Error(err)
			}
		}
	}))
	defer srv.Close()
	get := func(method, rng string, extra ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			req.Header.Set(extra[i], extra[i+1])
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, b
	}

	res, b := get("GET", "bytes=10-19")
	if res.StatusCode != 206 || string(b) != "0123456789" || res.Header.Get("Content-Range") != "bytes 10-19/10000" || res.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("single: %d %q %v", res.StatusCode, b, res.Header)
	}
	res, b = get("GET", "bytes=0-4,-3")
	_, params, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		d, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Range")+"="+string(d))
	}
	if want := []string{"bytes 0-4/10000=01234", "bytes 9997-9999/10000=789"}; res.StatusCode != 206 || !reflect.DeepEqual(parts, want) {
		t.Errorf("multipart: %d %q", res.StatusCode, parts)
	}
	res, b = get("HEAD", "bytes=0-4,-3")
	if res.StatusCode != 206 || len(b) != 0 || res.ContentLength <= 0 {
		t.Errorf("HEAD multipart: %d %d bytes, length %d", res.StatusCode, len(b), res.ContentLength)
	}
	res, _ = get("GET", "bytes=20000-")
	if res.StatusCode != 416 || res.Header.Get("Content-Range") != "bytes */10000" {
		t.Errorf("unsatisfiable: %d %v", res.StatusCode, res.Header)
	}
	res, b = get("GET", "bytes=x")
	if res.StatusCode != 200 || len(b) != len(body) {
		t.Errorf("invalid: %d %d bytes", res.StatusCode, len(b))
	}
	// §13.1.5: a stale If-Range gets the whole representation.
	res, b = get("GET", "bytes=0-4", "If-Range", `"v0"`)
	if res.StatusCode != 200 || len(b) != len(body) {
		t.Errorf("If-Range mismatch: %d %d bytes", res.StatusCode, len(b))
	}
}

// FuzzServeRanges checks whatever ParseRange accepts is served with an
// exact Content-Length and, for several ranges, as a multipart body that
// mime/multipart reads back to the right bytes.
func FuzzServeRanges(f *testing.F) {
	f.Add("bytes=0-0,2-3,-1", uint16(10))
	f.Add("bytes=5-", uint16(6))
	f.Fuzz(func(t *testing.T, h string, size16 uint16) {
		size := int64(size16 % 4096)
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i * 7)
		}
		rs, err := ParseRange(h, size)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		if err := ServeRanges(rec, nil, rs, size, "application/octet-stream", bytes.NewReader(body), false); err != nil {
			t.Fatal(err)
		}
		if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
			t.Fatalf("Content-Length %s, body %d", cl, rec.Body.Len())
		}
		if len(rs) == 1 {
			if !bytes.Equal(rec.Body.Bytes(), body[rs[0].Start:rs[0].End+1]) {
				t.Fatal("wrong bytes")
			}
			return
		}
		_, params, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(rec.Body, params["boundary"])
		for _, r := range rs {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			d, err := io.ReadAll(p)
			if err != nil || !bytes.Equal(d, body[r.Start:r.End+1]) {
				t.Fatalf("part %v: %v", r, err)
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Fatalf("trailing part: %v", err)
		}
	})
}
