package processors

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
)

func gzipOf(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func brOf(b []byte) []byte {
	var out bytes.Buffer
	w := brotli.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// Corrupt input never crashes a decoder, and a truncated stream is
// always an error, never a short body that could be stored (issue 16).
func FuzzGunzip(f *testing.F) {
	f.Add([]byte("hello, hello, hello"), []byte{}, 5)
	f.Add([]byte{}, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, 0)
	f.Fuzz(func(t *testing.T, plain, junk []byte, cut int) {
		// Arbitrary bytes: an error or a body, never a panic.
		io.Copy(io.Discard, io.LimitReader(gunzipStage(bytes.NewReader(junk)), 1<<20))
		// A valid stream cut short is an error.
		z := gzipOf(plain)
		if cut <= 0 || cut >= len(z) {
			cut = len(z) / 2
		}
		out, err := io.ReadAll(gunzipStage(bytes.NewReader(z[:cut])))
		if err == nil {
			t.Fatalf("truncated gzip (%d of %d bytes) read as a %d-byte body without error", cut, len(z), len(out))
		}
		out, err = io.ReadAll(gunzipStage(bytes.NewReader(z)))
		if err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzUnbrotli(f *testing.F) {
	f.Add([]byte("hello, hello, hello"), []byte{0xce, 0xb2, 0xcf, 0x81}, 3)
	f.Fuzz(func(t *testing.T, plain, junk []byte, cut int) {
		io.Copy(io.Discard, io.LimitReader(unbrotliStage(bytes.NewReader(junk)), 1<<20))
		z := brOf(plain)
		if cut <= 0 || cut >= len(z) {
			cut = len(z) / 2
		}
		out, err := io.ReadAll(unbrotliStage(bytes.NewReader(z[:cut])))
		if err == nil && !bytes.Equal(out, plain) {
			t.Fatalf("truncated brotli (%d of %d bytes) read as a short body without error", cut, len(z))
		}
		out, err = io.ReadAll(unbrotliStage(bytes.NewReader(z)))
		if err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// The encoders round-trip whatever they are given, in any read sizes.
func FuzzEncoders(f *testing.F) {
	f.Add([]byte("hello"), uint8(1))
	f.Fuzz(func(t *testing.T, plain []byte, step uint8) {
		for _, enc := range []struct {
			stage, dec stage
		}{{gzipStage, gunzipStage}, {brotliStage, unbrotliStage}} {
			r := enc.dec(&smallReads{r: enc.stage(&smallReads{r: bytes.NewReader(plain), n: int(step) + 1}), n: int(step)%7 + 1})
			out, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(out, plain) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzESI(f *testing.F) {
	f.Add([]byte(`a<esi:include src="/x"/><esi:remove>r</esi:remove><!--esi <esi:include src="/y" onerror="continue"/> -->b`))
	f.Add([]byte(`<esi:include src=x><esi:remove><!--esi`))
	f.Fuzz(func(t *testing.T, page []byte) {
		inc := func(_ context.Context, src string) ([]byte, error) {
			if src == "/y" {
				return nil, errors.New("no")
			}
			return []byte("[" + src + "]"), nil
		}
		esiProcess(context.Background(), page, inc, 1<<20)
	})
}

type smallReads struct {
	r io.Reader
	n int
}

func (s *smallReads) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}
