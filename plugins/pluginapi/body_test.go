package pluginapi

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// part is one message of a body stream, for partReader tests.
type part struct {
	chunk   string
	trailer *pluginv1.Trailer
	err     error
}

func TestPartReader(t *testing.T) {
	boom := errors.New("stream broke")
	tests := []struct {
		name    string
		parts   []part
		want    string
		wantErr error // nil: a clean EOF
	}{
		{"empty body", []part{{trailer: &pluginv1.Trailer{}}}, "", nil},
		{"chunks", []part{{chunk: "ab"}, {chunk: ""}, {chunk: "cde"}, {trailer: &pluginv1.Trailer{}}}, "abcde", nil},
		{"aborted", []part{{chunk: "ab"}, {trailer: &pluginv1.Trailer{Error: "origin reset"}}}, "ab", ErrBodyAborted},
		{"no trailer", []part{{chunk: "ab"}, {err: io.EOF}}, "ab", errMissingTrailer},
		{"transport error", []part{{chunk: "ab"}, {err: boom}}, "ab", boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			r := &partReader{next: func() ([]byte, *pluginv1.Trailer, error) {
				p := tt.parts[i]
				i++
				return []byte(p.chunk), p.trailer, p.err
			}}
			got, err := io.ReadAll(r)
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			// The error sticks.
			if _, err2 := r.Read(make([]byte, 1)); (err == nil) != (err2 == io.EOF) {
				t.Errorf("second read: %v after %v", err2, err)
			}
		})
	}
}

func TestSendBodyAndChunkWriter(t *testing.T) {
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, 3*ChunkSize + 5} {
		body := strings.Repeat("z", size)
		var chunks [][]byte
		var trailer *pluginv1.Trailer
		err := sendBody(strings.NewReader(body), ChunkSize,
			func(b []byte) error {
				if len(b) > ChunkSize || len(b) == 0 {
					t.Errorf("size %d: chunk of %d bytes", size, len(b))
				}
				chunks = append(chunks, bytes.Clone(b))
				return nil
			},
			func(tr *pluginv1.Trailer) error { trailer = tr; return nil })
		if err != nil || trailer == nil || trailer.GetError() != "" {
			t.Fatalf("size %d: err %v, trailer %v", size, err, trailer)
		}
		if got := string(bytes.Join(chunks, nil)); got != body {
			t.Errorf("size %d: sent %d bytes", size, len(got))
		}
		var sent int
		w := &chunkWriter{send: func(b []byte) error {
			if len(b) > ChunkSize {
				t.Errorf("chunkWriter sent %d bytes in one chunk", len(b))
			}
			sent += len(b)
			return nil
		}}
		if n, err := w.Write([]byte(body)); n != size || err != nil || sent != size {
			t.Errorf("chunkWriter: %d, %v; sent %d of %d", n, err, sent, size)
		}
	}
	// A body that fails is ended with an error trailer.
	var trailer *pluginv1.Trailer
	_ = sendBody(io.MultiReader(strings.NewReader("x"), &failing{}), ChunkSize, func([]byte) error { return nil },
		func(tr *pluginv1.Trailer) error { trailer = tr; return nil })
	if trailer.GetError() != "disk on fire" {
		t.Errorf("trailer = %v, want the read error", trailer)
	}
}

type failing struct{}

func (*failing) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
