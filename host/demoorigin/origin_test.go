package demoorigin

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newServer starts the origin on a loopback httptest server.
func newServer(t *testing.T) (*Origin, *httptest.Server) {
	t.Helper()
	o := New(nil)
	srv := httptest.NewServer(o)
	t.Cleanup(func() {
		o.Close()
		srv.Close()
	})
	return o, srv
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res, body
}

func bytesBody(n int64, seed uint64) []byte {
	b := make([]byte, n)
	fill(b, 0, streamBytes|seed)
	return b
}

func bigBody(start, n int64, version int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = BigByte(start+int64(i), version)
	}
	return b
}

func TestEndpoints(t *testing.T) {
	etagV1 := `"bytes-1024-0"`
	lm := fixedLastModified.Format(http.TimeFormat)
	tests := []struct {
		name     string
		method   string
		path     string
		hdr      map[string]string
		code     int
		wantHdr  map[string]string // "" means: header absent
		wantBody []byte            // nil: not checked
		contains string
	}{
		{name: "bytes 1k", path: "/bytes/1k", code: 200,
			wantHdr:  map[string]string{"Content-Length": "1024", "Content-Type": "application/octet-stream", "Cache-Control": "max-age=3600", "Etag": etagV1, "Last-Modified": lm},
			wantBody: bytesBody(1024, 0)},
		{name: "bytes 28k seed", path: "/bytes/28k?seed=7", code: 200,
			wantHdr:  map[string]string{"Content-Length": "28672", "Etag": `"bytes-28672-7"`},
			wantBody: bytesBody(28<<10, 7)},
		{name: "bytes streamed beyond cache", path: "/bytes/2m", code: 200,
			wantHdr:  map[string]string{"Content-Length": "2097152"},
			wantBody: bytesBody(2<<20, 0)},
		{name: "bytes zero", path: "/bytes/0", code: 200, wantHdr: map[string]string{"Content-Length": "0"}, wantBody: []byte{}},
		{name: "bytes max-age", path: "/bytes/10?max-age=5", code: 200, wantHdr: map[string]string{"Cache-Control": "max-age=5"}},
		{name: "bytes cc", path: "/bytes/10?cc=private,+no-store", code: 200, wantHdr: map[string]string{"Cache-Control": "private, no-store"}},
		{name: "bytes head", method: "HEAD", path: "/bytes/1k", code: 200, wantHdr: map[string]string{"Content-Length": "1024"}, wantBody: []byte{}},
		{name: "bytes inm", path: "/bytes/1k", hdr: map[string]string{"If-None-Match": `"x", ` + etagV1}, code: 304, wantHdr: map[string]string{"Etag": etagV1}, wantBody: []byte{}},
		{name: "bytes inm weak", path: "/bytes/1k", hdr: map[string]string{"If-None-Match": "W/" + etagV1}, code: 304},
		{name: "bytes inm other", path: "/bytes/1k", hdr: map[string]string{"If-None-Match": `"bytes-1024-1"`}, code: 200},
		{name: "bytes ims", path: "/bytes/1k", hdr: map[string]string{"If-Modified-Since": lm}, code: 304},
		{name: "bytes ims older", path: "/bytes/1k", hdr: map[string]string{"If-Modified-Since": fixedLastModified.Add(-time.Hour).Format(http.TimeFormat)}, code: 200},
		{name: "bytes range ignored", path: "/bytes/1k", hdr: map[string]string{"Range": "bytes=0-9"}, code: 200, wantHdr: map[string]string{"Content-Length": "1024", "Accept-Ranges": ""}},
		{name: "bytes bad size", path: "/bytes/12x", code: 400},
		{name: "bytes too big", path: "/bytes/2g", code: 400},
		{name: "bytes bad seed", path: "/bytes/1?seed=-1", code: 400},

		{name: "big full", path: "/big/100k", code: 200,
			wantHdr:  map[string]string{"Content-Length": "102400", "Accept-Ranges": "bytes", "Etag": `"big-102400-v1"`, "Last-Modified": fixedLastModified.Add(time.Hour).Format(http.TimeFormat)},
			wantBody: bigBody(0, 100<<10, 1)},
		{name: "big head", method: "HEAD", path: "/big/256m", code: 200, wantHdr: map[string]string{"Content-Length": "268435456", "Accept-Ranges": "bytes"}, wantBody: []byte{}},
		{name: "big range", path: "/big/256m", hdr: map[string]string{"Range": "bytes=100000000-100000999"}, code: 206,
			wantHdr: map[string]string{"Content-Range": "bytes 100000000-100000999/268435456", "Content-Length": "1000"}, wantBody: bigBody(100000000, 1000, 1)},
		{name: "big range open", path: "/big/1k", hdr: map[string]string{"Range": "bytes=1000-"}, code: 206,
			wantHdr: map[string]string{"Content-Range": "bytes 1000-1023/1024"}, wantBody: bigBody(1000, 24, 1)},
		{name: "big range suffix", path: "/big/1k", hdr: map[string]string{"Range": "bytes=-7"}, code: 206,
			wantHdr: map[string]string{"Content-Range": "bytes 1017-1023/1024"}, wantBody: bigBody(1017, 7, 1)},
		{name: "big range clamp", path: "/big/1k", hdr: map[string]string{"Range": "bytes=1020-5000"}, code: 206,
			wantHdr: map[string]string{"Content-Range": "bytes 1020-1023/1024"}, wantBody: bigBody(1020, 4, 1)},
		{name: "big range unsatisfiable", path: "/big/1k", hdr: map[string]string{"Range": "bytes=1024-"}, code: 416,
			wantHdr: map[string]string{"Content-Range": "bytes */1024"}},
		{name: "big range multi ignored", path: "/big/1k", hdr: map[string]string{"Range": "bytes=0-1,5-6"}, code: 200, wantBody: bigBody(0, 1024, 1)},
		{name: "big if-range etag", path: "/big/1k", hdr: map[string]string{"Range": "bytes=0-9", "If-Range": `"big-1024-v1"`}, code: 206, wantBody: bigBody(0, 10, 1)},
		{name: "big if-range stale etag", path: "/big/1k", hdr: map[string]string{"Range": "bytes=0-9", "If-Range": `"big-1024-v0"`}, code: 200, wantBody: bigBody(0, 1024, 1)},
		{name: "big if-range date", path: "/big/1k", hdr: map[string]string{"Range": "bytes=0-9", "If-Range": fixedLastModified.Add(time.Hour).Format(http.TimeFormat)}, code: 206},
		{name: "big if-range old date", path: "/big/1k", hdr: map[string]string{"Range": "bytes=0-9", "If-Range": lm}, code: 200},
		{name: "big inm", path: "/big/1k", hdr: map[string]string{"If-None-Match": `"big-1024-v1"`}, code: 304},
		{name: "big nolength", path: "/big/10k?nolength=1", code: 200, wantHdr: map[string]string{"Content-Length": "", "Accept-Ranges": ""}, wantBody: bigBody(0, 10<<10, 1)},
		{name: "big no validators", path: "/big/1k?noetag=1&nolastmod=1", code: 200, wantHdr: map[string]string{"Etag": "", "Last-Modified": ""}},
		{name: "big bad size", path: "/big/abc", code: 400},

		{name: "status 503", path: "/status/503", code: 503, contains: "status 503"},
		{name: "status 204", path: "/status/204", code: 204, wantBody: []byte{}},
		{name: "status bad", path: "/status/42", code: 400},
		{name: "delay", path: "/delay/20", code: 200, contains: "delayed 20 ms"},
		{name: "delay bad", path: "/delay/x", code: 400},
		{name: "cookie", path: "/cookie", code: 200, wantHdr: map[string]string{"Cache-Control": "max-age=3600"}, contains: "cookie session="},
		{name: "vary", path: "/vary", hdr: map[string]string{"Accept-Language": "fr"}, code: 200, wantHdr: map[string]string{"Vary": "Accept-Language"}, wantBody: []byte("Accept-Language: fr\n")},
		{name: "tag", path: "/tag/a,b", code: 200, wantHdr: map[string]string{"Surrogate-Key": "a b", "Xkey": "a b"}},
		{name: "tag none", path: "/tag/", code: 400},
		{name: "cc", path: "/cc?value=s-maxage%3D10,+public", code: 200, wantHdr: map[string]string{"Cache-Control": "s-maxage=10, public"}, contains: "s-maxage=10, public"},
		{name: "cc empty", path: "/cc", code: 200, wantHdr: map[string]string{"Cache-Control": ""}},
		{name: "etag", path: "/etag", code: 200, wantHdr: map[string]string{"Etag": `"v1"`, "Last-Modified": lm, "Cache-Control": ""}},
		{name: "etag custom", path: "/etag?v=abc", hdr: map[string]string{"If-None-Match": `"v1"`}, code: 200, wantHdr: map[string]string{"Etag": `"abc"`}},
		{name: "etag inm", path: "/etag", hdr: map[string]string{"If-None-Match": `"v1"`}, code: 304, wantBody: []byte{}},
		{name: "etag inm star", path: "/etag", hdr: map[string]string{"If-None-Match": `*`}, code: 304},
		{name: "etag ims", path: "/etag", hdr: map[string]string{"If-Modified-Since": lm}, code: 304},
		{name: "etag inm wins over ims", path: "/etag", hdr: map[string]string{"If-None-Match": `"v2"`, "If-Modified-Since": lm}, code: 200},
		{name: "echo", method: "DELETE", path: "/echo?q=1", hdr: map[string]string{"X-Test": "yes"}, code: 200, wantHdr: map[string]string{"Cache-Control": "no-store"}, contains: "DELETE /echo?q=1 HTTP/1.1\nHost: 127.0.0.1:"},
		{name: "healthz", path: "/healthz", code: 200, wantBody: []byte("ok\n")},
		{name: "index", path: "/", code: 200, contains: "/big/N"},
		{name: "unknown", path: "/nope", code: 404},
		{name: "admin unknown", path: "/admin/nope", code: 404},
		{name: "admin version get", path: "/admin/version", code: 200, wantBody: []byte("1\n")},
		{name: "admin reset get", path: "/admin/reset", code: 405},
	}
	_, srv := newServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			res, body := do(t, srv, method, tt.path, tt.hdr)
			if got, want := res.StatusCode, tt.code; got != want {
				t.Fatalf("status = %d, want %d (body %.200q)", got, want, body)
			}
			if res.Header.Get("X-Origin-Request") == "" {
				t.Error("X-Origin-Request missing")
			}
			for k, want := range tt.wantHdr {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body (%d bytes) differs from the wanted %d bytes", len(body), len(tt.wantBody))
			}
			if !strings.Contains(string(body), tt.contains) {
				t.Errorf("body %.300q does not contain %q", body, tt.contains)
			}
		})
	}
}

func TestOriginRequestSequence(t *testing.T) {
	_, srv := newServer(t)
	var last int
	for i := range 3 {
		res, _ := do(t, srv, "GET", "/bytes/1", nil)
		n, err := strconv.Atoi(res.Header.Get("X-Origin-Request"))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && n != last+1 {
			t.Errorf("X-Origin-Request = %d after %d", n, last)
		}
		last = n
	}
}

func TestCounter(t *testing.T) {
	o, srv := newServer(t)
	for want := 1; want <= 3; want++ {
		_, body := do(t, srv, "GET", "/counter/a?max-age=9", nil)
		if got := strings.TrimSpace(string(body)); got != strconv.Itoa(want) {
			t.Errorf("fetch %d: body %q", want, got)
		}
	}
	res, body := do(t, srv, "GET", "/counter/b", nil)
	if string(body) != "1\n" {
		t.Errorf("/counter/b = %q, want 1", body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "" {
		t.Errorf("/counter Cache-Control = %q, want none", cc)
	}
	o.ResetStats()
	if _, body := do(t, srv, "GET", "/counter/a", nil); string(body) != "1\n" {
		t.Errorf("after reset: %q, want 1", body)
	}
}

func TestStats(t *testing.T) {
	o, srv := newServer(t)
	do(t, srv, "GET", "/bytes/1k", nil)
	do(t, srv, "GET", "/bytes/28k", nil)
	do(t, srv, "HEAD", "/bytes/28k", nil)
	do(t, srv, "GET", "/big/256m", map[string]string{"Range": "bytes=100000000-100999999"})
	do(t, srv, "GET", "/etag", map[string]string{"If-None-Match": `"v1"`})
	do(t, srv, "GET", "/healthz", nil) // control: not counted
	do(t, srv, "GET", "/stats", nil)   // control: not counted

	st := o.Stats()
	want := Stats{
		Requests:         5,
		RequestsByPrefix: map[string]int64{"/bytes": 3, "/big": 1, "/etag": 1},
		BytesSent:        1024 + 28<<10 + 1000000,
		BytesByPrefix:    map[string]int64{"/bytes": 1024 + 28<<10, "/big": 1000000},
		NotModified:      1,
		BigVersion:       1,
	}
	if !statsEqual(st, want) {
		t.Errorf("Stats() = %+v, want %+v", st, want)
	}

	// The JSON endpoint says the same.
	_, body := do(t, srv, "GET", "/stats", nil)
	var js Stats
	if err := json.Unmarshal(body, &js); err != nil {
		t.Fatalf("/stats: %v in %q", err, body)
	}
	if !statsEqual(js, want) {
		t.Errorf("/stats = %+v, want %+v", js, want)
	}

	res, _ := do(t, srv, "POST", "/admin/reset", nil)
	if res.StatusCode != 200 {
		t.Fatalf("POST /admin/reset: %d", res.StatusCode)
	}
	if st := o.Stats(); st.Requests != 0 || st.BytesSent != 0 || st.NotModified != 0 || len(st.RequestsByPrefix) != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func statsEqual(a, b Stats) bool {
	if a.Requests != b.Requests || a.BytesSent != b.BytesSent || a.NotModified != b.NotModified || a.BigVersion != b.BigVersion {
		return false
	}
	return mapEqual(a.RequestsByPrefix, b.RequestsByPrefix) && mapEqual(a.BytesByPrefix, b.BytesByPrefix)
}

func mapEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestBigVersion(t *testing.T) {
	o, srv := newServer(t)
	res1, body1 := do(t, srv, "GET", "/big/64k", nil)
	res, body := do(t, srv, "POST", "/admin/version", nil)
	if res.StatusCode != 200 || string(body) != "2\n" {
		t.Fatalf("POST /admin/version: %d %q", res.StatusCode, body)
	}
	res2, body2 := do(t, srv, "GET", "/big/64k", nil)
	if res1.Header.Get("Etag") == res2.Header.Get("Etag") {
		t.Error("ETag did not change with the version")
	}
	if res1.Header.Get("Last-Modified") == res2.Header.Get("Last-Modified") {
		t.Error("Last-Modified did not change with the version")
	}
	if bytes.Equal(body1, body2) {
		t.Error("content did not change with the version")
	}
	if !bytes.Equal(body2, bigBody(0, 64<<10, 2)) {
		t.Error("version 2 body differs from BigByte(i, 2)")
	}
	// A range guarded by the old validator gets the whole new object.
	res3, body3 := do(t, srv, "GET", "/big/64k", map[string]string{"Range": "bytes=0-99", "If-Range": res1.Header.Get("Etag")})
	if res3.StatusCode != 200 || !bytes.Equal(body3, body2) {
		t.Errorf("If-Range with old ETag: %d, %d bytes", res3.StatusCode, len(body3))
	}
	if got := o.Stats().BigVersion; got != 2 {
		t.Errorf("Stats().BigVersion = %d", got)
	}
}

// TestBigRanges checks ranges all over a 256 MiB object byte for byte
// against the generator, and a full body against BigReaderAt.
func TestBigRanges(t *testing.T) {
	_, srv := newServer(t)
	const size = 256 << 20
	for _, r := range [][2]int64{{0, 0}, {1, 8}, {7, 16}, {5 << 20, 10<<20 - 1}, {100000000, 100999999}, {size - 3, size - 1}} {
		res, body := do(t, srv, "GET", "/big/256m", map[string]string{"Range": "bytes=" + strconv.FormatInt(r[0], 10) + "-" + strconv.FormatInt(r[1], 10)})
		if res.StatusCode != 206 {
			t.Fatalf("range %v: status %d", r, res.StatusCode)
		}
		want := make([]byte, r[1]-r[0]+1)
		if n, err := (BigReaderAt{Size: size, Version: 1}).ReadAt(want, r[0]); n != len(want) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt: %d, %v", n, err)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("range %v: body differs from BigReaderAt", r)
		}
		for _, i := range []int64{r[0], r[1], (r[0] + r[1]) / 2} {
			if got, want := body[i-r[0]], BigByte(i, 1); got != want {
				t.Errorf("byte %d = %d, want %d", i, got, want)
			}
		}
	}

	const full = 3<<20 + 5
	res, err := srv.Client().Get(srv.URL + "/big/" + strconv.Itoa(full))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h1 := sha256.New()
	if _, err := io.Copy(h1, res.Body); err != nil {
		t.Fatal(err)
	}
	h2 := sha256.New()
	if _, err := io.Copy(h2, io.NewSectionReader(BigReaderAt{Size: full, Version: 1}, 0, full)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h1.Sum(nil), h2.Sum(nil)) {
		t.Error("full /big body differs from BigReaderAt")
	}
}

func TestBigReaderAt(t *testing.T) {
	r := BigReaderAt{Size: 10, Version: 3}
	p := make([]byte, 8)
	if n, err := r.ReadAt(p, 4); n != 6 || err != io.EOF {
		t.Errorf("ReadAt past end: %d, %v", n, err)
	}
	for i := range 6 {
		if p[i] != BigByte(int64(4+i), 3) {
			t.Errorf("byte %d differs", 4+i)
		}
	}
	if _, err := r.ReadAt(p, -1); !errors.Is(err, ErrNegativeOffset) {
		t.Errorf("negative offset: %v", err)
	}
	if n, err := r.ReadAt(p, 10); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at end: %d, %v", n, err)
	}
}

// TestFillMatchesByte checks the word-at-a-time generator against the
// byte-at-a-time definition at every alignment.
func TestFillMatchesByte(t *testing.T) {
	for off := int64(0); off < 17; off++ {
		for n := 0; n < 40; n++ {
			p := make([]byte, n)
			fill(p, off, 5)
			for i := range p {
				if p[i] != genByte(off+int64(i), 5) {
					t.Fatalf("fill(off %d, n %d): byte %d differs", off, n, i)
				}
			}
		}
	}
}

func TestBigGzip(t *testing.T) {
	_, srv := newServer(t)
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get(srv.URL + "/big/100k?gzip=1")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if got := res.Header.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding = %q", got)
	}
	if res.ContentLength != -1 {
		t.Errorf("ContentLength = %d, want unknown", res.ContentLength)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, bigBody(0, 100<<10, 1)) {
		t.Error("gunzipped body differs from the generator")
	}
}

func TestTruncate(t *testing.T) {
	o, srv := newServer(t)
	res, err := srv.Client().Get(srv.URL + "/truncate/10k")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ContentLength != 10<<10 {
		t.Errorf("ContentLength = %d", res.ContentLength)
	}
	body, err := io.ReadAll(res.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error = %v, want unexpected EOF", err)
	}
	if len(body) != 5<<10 {
		t.Errorf("got %d bytes, want %d", len(body), 5<<10)
	}
	if got := o.Stats().BytesByPrefix["/truncate"]; got != 5<<10 {
		t.Errorf("bytes counted = %d", got)
	}
}

func TestStall(t *testing.T) {
	_, srv := newServer(t)
	res, err := srv.Client().Get(srv.URL + "/stall?size=64k&send=1k&for=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	start := time.Now()
	body, err := io.ReadAll(res.Body)
	if err == nil {
		t.Error("stalled body ended without error")
	}
	if len(body) != 1<<10 {
		t.Errorf("got %d bytes before the stall, want 1024", len(body))
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("stall lasted %v", d)
	}
}

// TestStallClose checks that Close releases a stall at once (so that
// httptest.Server.Close does not wait a minute).
func TestStallClose(t *testing.T) {
	o, srv := newServer(t)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1024)
	if _, err := io.ReadFull(res.Body, got); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	o.Close()
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Error("body ended cleanly after Close")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close released the stall after %v", d)
	}
}

func TestDelayWaits(t *testing.T) {
	_, srv := newServer(t)
	start := time.Now()
	do(t, srv, "GET", "/delay/100", nil)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("/delay/100 answered after %v", d)
	}
}

func TestEchoBody(t *testing.T) {
	_, srv := newServer(t)
	res, err := srv.Client().Post(srv.URL+"/echo", "text/plain", strings.NewReader("hello body"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, want := range []string{"POST /echo HTTP/1.1\n", "Content-Type: text/plain\n", "\n\nhello body"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("echo %q lacks %q", body, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false}, {"1024", 1024, false}, {"1k", 1024, false}, {"28K", 28 << 10, false},
		{"256m", 256 << 20, false}, {"1g", 1 << 30, false}, {"", 0, true}, {"k", 0, true},
		{"-1", 0, true}, {"1.5k", 0, true}, {"2g", 0, true}, {"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in, 1<<30)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in   string
		size int64
		want byteRange
		err  error
	}{
		{"bytes=0-0", 10, byteRange{0, 0}, nil},
		{"bytes=2-", 10, byteRange{2, 9}, nil},
		{"bytes=-3", 10, byteRange{7, 9}, nil},
		{"bytes=-30", 10, byteRange{0, 9}, nil},
		{"bytes=5-100", 10, byteRange{5, 9}, nil},
		{"Bytes = 1-2", 10, byteRange{1, 2}, nil},
		{"bytes=10-", 10, byteRange{}, ErrRangeUnsatisfiable},
		{"bytes=-0", 10, byteRange{}, ErrRangeUnsatisfiable},
		{"bytes=0-", 0, byteRange{}, ErrRangeUnsatisfiable},
		{"bytes=3-2", 10, byteRange{}, ErrRangeIgnored},
		{"bytes=0-1,3-4", 10, byteRange{}, ErrRangeIgnored},
		{"items=0-1", 10, byteRange{}, ErrRangeIgnored},
		{"bytes=a-b", 10, byteRange{}, ErrRangeIgnored},
		{"bytes=", 10, byteRange{}, ErrRangeIgnored},
		{"bytes=-", 10, byteRange{}, ErrRangeIgnored},
		{"bytes=+1-2", 10, byteRange{}, ErrRangeIgnored},
	}
	for _, tt := range tests {
		got, err := parseRange(tt.in, tt.size)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("parseRange(%q, %d) = %v, %v; want %v, %v", tt.in, tt.size, got, err, tt.want, tt.err)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=5-", "bytes=1-2,3-4", "bytes=x"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		br, err := parseRange(h, size)
		if err != nil {
			return
		}
		if br.start < 0 || br.end < br.start || br.end >= size {
			t.Fatalf("parseRange(%q, %d) = %v: outside the object", h, size, br)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1k", "256m", "0", "9g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s, 1<<40)
		if err == nil && (n < 0 || n > 1<<40) {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
	})
}
