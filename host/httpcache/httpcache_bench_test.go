package httpcache

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

var (
	sinkCC    CacheControl
	sinkStr   string
	sinkBytes []byte
	sinkInt   int
)

func BenchmarkParseCacheControl(b *testing.B) {
	b.ReportAllocs()
	v := []string{"public, max-age=3600, s-maxage=600, stale-while-revalidate=30, stale-if-error=86400"}
	for b.Loop() {
		sinkCC = ParseCacheControl(v)
	}
}

func BenchmarkParseCacheControlQualified(b *testing.B) {
	b.ReportAllocs()
	v := []string{`max-age=60, no-cache="Set-Cookie"`}
	for b.Loop() {
		sinkCC = ParseCacheControl(v)
	}
}

func BenchmarkParseRange(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		rs, _ := ParseRange("bytes=1000-1999", 1<<20)
		sinkInt = len(rs)
	}
}

func BenchmarkAppendRangeMulti(b *testing.B) {
	b.ReportAllocs()
	buf := make([]ByteRange, 0, 8)
	for b.Loop() {
		rs, _ := AppendRange(buf[:0], "bytes=0-99, 200-299, -50", 1<<20)
		sinkInt = len(rs)
	}
}

func BenchmarkCacheStatusString(b *testing.B) {
	b.ReportAllocs()
	cs := CacheStatus{Hit: true, TTL: 93 * time.Second}
	for b.Loop() {
		sinkStr = cs.String()
	}
}

func BenchmarkCacheStatusAppendTo(b *testing.B) {
	b.ReportAllocs()
	cs := CacheStatus{Hit: true, TTL: 93 * time.Second}
	buf := make([]byte, 0, 128)
	for b.Loop() {
		buf = cs.AppendTo(buf[:0])
	}
	sinkBytes = buf
}

var benchReq = http.Header{
	"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
	"Accept-Encoding": {"gzip, deflate, br, zstd"},
	"Accept-Language": {"en-GB,en;q=0.9"},
	"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
}

func BenchmarkVaryKey(b *testing.B) {
	b.ReportAllocs()
	vary := []string{"Accept-Encoding"}
	for b.Loop() {
		sinkStr, _ = VaryKey(vary, benchReq)
	}
}

func BenchmarkAppendVaryKey(b *testing.B) {
	b.ReportAllocs()
	vary := []string{"Accept-Encoding, Accept-Language"}
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf, _ = AppendVaryKey(buf[:0], vary, benchReq)
	}
	sinkBytes = buf
}

func BenchmarkEvaluatePreconditions(b *testing.B) {
	b.ReportAllocs()
	h := http.Header{"If-None-Match": {`"abc123"`}}
	lm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for b.Loop() {
		sinkInt = EvaluatePreconditions("GET", h, `"abc123"`, lm)
	}
}

func BenchmarkEvaluatePreconditionsIMS(b *testing.B) {
	b.ReportAllocs()
	lm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	h := http.Header{"If-Modified-Since": {lm.Format(http.TimeFormat)}}
	for b.Loop() {
		sinkInt = EvaluatePreconditions("GET", h, "", lm)
	}
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

var _ io.Writer = (*discard)(nil)

func BenchmarkServeRangesSingle(b *testing.B) {
	b.ReportAllocs()
	body := bytes.Repeat([]byte("x"), 28<<10)
	r := bytes.NewReader(body)
	rs := []ByteRange{{1000, 9999}}
	w := &discard{h: http.Header{}}
	for b.Loop() {
		_ = ServeRanges(w, nil, rs, int64(len(body)), "text/plain", r, false)
	}
}

func BenchmarkServeRangesMultipart(b *testing.B) {
	b.ReportAllocs()
	body := bytes.Repeat([]byte("x"), 28<<10)
	r := bytes.NewReader(body)
	rs := []ByteRange{{0, 99}, {1000, 1999}, {20000, 28000}}
	w := &discard{h: http.Header{}}
	for b.Loop() {
		_ = ServeRanges(w, nil, rs, int64(len(body)), "text/plain", r, false)
	}
}
