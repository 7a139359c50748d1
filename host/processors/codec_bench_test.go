package processors

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// text is a compressible page of about 28 KiB (the gunzip
// comparison object).
var benchText = []byte(strings.Repeat("<li><a href=\"/item/1234\">An item of the catalogue, 12.50 EUR</a></li>\n", 400))[:28<<10]

// benchStage reports the throughput in bytes of text (compressed or
// decompressed) per second on one core.
func benchStage(b *testing.B, in []byte, st stage) {
	b.SetBytes(int64(len(benchText)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.Copy(io.Discard, st(bytes.NewReader(in))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGzip28K(b *testing.B)     { benchStage(b, benchText, gzipStage) }
func BenchmarkBrotli28K(b *testing.B)   { benchStage(b, benchText, brotliStage) }
func BenchmarkGunzip28K(b *testing.B)   { benchStage(b, gzipOf(benchText), gunzipStage) }
func BenchmarkUnbrotli28K(b *testing.B) { benchStage(b, brOf(benchText), unbrotliStage) }
