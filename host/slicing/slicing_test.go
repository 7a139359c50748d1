package slicing

import (
	"errors"
	"net/http"
	"testing"

	"github.com/edgehost/edgehost/host/cache"
)

func TestSliceMetaRoundTrip(t *testing.T) {
	want := sliceMeta{size: 5254225, segSize: 1 << 20, gen: "f1dea5d2e459"}
	got, ok := decodeSliceMeta(encodeSliceMeta(want))
	if !ok || got != want {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", want, got, ok)
	}
	for _, b := range [][]byte{nil, {sliceMetaVersion}, {9, 1, 1}, {sliceMetaVersion, 5, 0}} {
		if _, ok := decodeSliceMeta(b); ok {
			t.Errorf("decodeSliceMeta(%v) accepted", b)
		}
	}
}

func TestParseSegment(t *testing.T) {
	for _, tt := range []struct {
		in  string
		gen string
		idx int64
		ok  bool
	}{
		{"abc 3", "abc", 3, true},
		{" abc 0 ", "abc", 0, true},
		{"abc", "", 0, false},
		{" 3", "", 0, false},
		{"abc -1", "abc", -1, false},
		{"abc x", "abc", 0, false},
	} {
		gen, idx, ok := parseSegment(tt.in)
		if ok != tt.ok || (ok && (gen != tt.gen || idx != tt.idx)) {
			t.Errorf("parseSegment(%q) = %q, %d, %v; want %q, %d, %v", tt.in, gen, idx, ok, tt.gen, tt.idx, tt.ok)
		}
	}
}

func TestFirstSegmentRange(t *testing.T) {
	for _, tt := range []struct{ rh, want string }{
		{"", "bytes=0-1023"},
		{"bytes=5000-6000", "bytes=4096-5119"},
		{"bytes=1024-", "bytes=1024-2047"},
		{"bytes=-500", "bytes=0-1023"},
		{"bytes=3000-3001, 10-20", "bytes=2048-3071"},
		{"items=5-6", "bytes=0-1023"},
	} {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		if tt.rh != "" {
			r.Header.Set("Range", tt.rh)
		}
		if got := firstSegmentRange(r, 1024); got != tt.want {
			t.Errorf("firstSegmentRange(%q) = %q, want %q", tt.rh, got, tt.want)
		}
	}
}

func TestCheckSegment(t *testing.T) {
	meta := &cache.Object{ETag: `"v1"`, Header: http.Header{"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}}}
	sm := sliceMeta{size: 3000, segSize: 1024}
	ok := http.Header{"Content-Range": {"bytes 1024-2047/3000"}, "Etag": {`"v1"`}}
	for _, tt := range []struct {
		name     string
		status   int
		h        http.Header
		cl       int64
		mismatch bool // errSegmentMismatch (the origin object changed)
		fail     bool
	}{
		{"ok", 206, ok, 1024, false, false},
		{"length unknown", 206, ok, -1, false, false},
		{"precondition failed", 412, nil, -1, true, true},
		{"whole object", 200, ok, 3000, false, true},
		{"other range", 206, http.Header{"Content-Range": {"bytes 0-1023/3000"}, "Etag": {`"v1"`}}, 1024, true, true},
		{"other total", 206, http.Header{"Content-Range": {"bytes 1024-2047/3001"}, "Etag": {`"v1"`}}, 1024, true, true},
		{"short", 206, ok, 1000, true, true},
		{"other etag", 206, http.Header{"Content-Range": {"bytes 1024-2047/3000"}, "Etag": {`"v2"`}}, 1024, true, true},
	} {
		err := checkSegment(tt.status, tt.h, tt.cl, meta, sm, 1024, 2047)
		if (err != nil) != tt.fail || errors.Is(err, errSegmentMismatch) != tt.mismatch {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestWholeView(t *testing.T) {
	resp := &http.Response{StatusCode: 206, Header: http.Header{"Content-Range": {"bytes 0-1023/5000"}, "Etag": {`"v1"`}}, ContentLength: 1024}
	v := wholeView(resp)
	if v.StatusCode != 200 || v.ContentLength != 5000 || v.Header.Get("Content-Length") != "5000" || v.Header.Get("Content-Range") != "" || v.Header.Get("Etag") != `"v1"` {
		t.Errorf("wholeView = %d %d %v", v.StatusCode, v.ContentLength, v.Header)
	}
	if resp.Header.Get("Content-Range") == "" {
		t.Error("wholeView changed the response's header")
	}
}
