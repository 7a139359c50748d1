package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// A spilled stream keeps at most about its window ahead of the slowest
// cursor however long the body, and every cursor still reads it whole.
func TestStreamSpillBounded(t *testing.T) {
	const window, chunk, total = 256 << 10, 16 << 10, 8 << 20
	s := NewStream()
	fast, slow := s.Cursor(), s.Cursor()
	s.Spill(window)
	body := make([]byte, total)
	for i := range body {
		body[i] = byte(i * 7 / 3)
	}
	read := func(c *Cursor, pause time.Duration, out chan<- []byte) {
		var got []byte
		for {
			p, end, err := c.Next(context.Background())
			got = append(got, p...)
			if end {
				if err != nil {
					t.Error(err)
				}
				break
			}
			time.Sleep(pause)
		}
		c.Close()
		out <- got
	}
	fastOut, slowOut := make(chan []byte, 1), make(chan []byte, 1)
	go read(fast, 0, fastOut)
	go read(slow, 50*time.Microsecond, slowOut)
	peak := 0
	for off := 0; off < total; off += chunk {
		s.Write(body[off : off+chunk])
		s.mu.Lock()
		peak = max(peak, len(s.buf))
		s.mu.Unlock()
	}
	s.Close(nil)
	if got, want := <-fastOut, body; !bytes.Equal(got, want) {
		t.Fatalf("fast reader: %d bytes, not the body", len(got))
	}
	if got, want := <-slowOut, body; !bytes.Equal(got, want) {
		t.Fatalf("slow reader: %d bytes, not the body", len(got))
	}
	if limit := window + chunk; peak > limit {
		t.Fatalf("spilled stream kept %d bytes, bound %d", peak, limit)
	}
	t.Logf("peak kept %d bytes for a %d-byte body (window %d)", peak, total, window)
	if _, err := s.Bytes(); !errors.Is(err, ErrDropped) {
		t.Fatalf("Bytes of a spilled stream: %v, want ErrDropped", err)
	}
	if c := s.Cursor(); c != nil {
		t.Fatal("a new cursor on a stream whose start is dropped")
	}
}

// A writer waits for a reader that does not read, and ends with its
// context; a cursor closed lets it go on.
func TestStreamSpillWaitsForReaders(t *testing.T) {
	s := NewStream()
	c := s.Cursor()
	s.Spill(1024)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.WriteContext(ctx, make([]byte, 4096)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write past the window of an idle reader: %v, want the context's end", err)
	}
	c.Close()
	if _, err := s.WriteContext(context.Background(), make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if got := s.Readers(); got != 0 {
		t.Fatalf("readers %d, want 0", got)
	}
	if got, want := s.Len(), 8192; got != want {
		t.Fatalf("Len %d, want %d", got, want)
	}
}

// Unspilled, the stream keeps the whole body for storing, and a cursor
// taken after it ended still reads it from the start.
func TestStreamWholeUntilSpill(t *testing.T) {
	s := NewStream()
	s.Write([]byte("hello, "))
	s.Write([]byte("world"))
	s.Close(nil)
	if n, ok := s.Complete(); !ok || n != 12 {
		t.Fatalf("Complete = %d, %v", n, ok)
	}
	c := s.Cursor()
	defer c.Close()
	p, _, _ := c.Next(context.Background())
	if string(p) != "hello, world" {
		t.Fatalf("cursor read %q", p)
	}
}

// Skip passes over bytes as they arrive, and says io.EOF short of the end.
func TestStreamReaderSkip(t *testing.T) {
	s := NewStream()
	r := s.Reader(context.Background()).(interface {
		Read([]byte) (int, error)
		Skip(int64) (int64, error)
	})
	go func() {
		for i := range 10 {
			s.Write([]byte{byte(i), byte(i)})
			time.Sleep(time.Millisecond)
		}
		s.Close(nil)
	}()
	if n, err := r.Skip(5); n != 5 || err != nil {
		t.Fatalf("Skip(5) = %d, %v", n, err)
	}
	b := make([]byte, 1)
	if _, err := r.Read(b); err != nil || b[0] != 2 {
		t.Fatalf("the byte after the skip: %v, %v; want 2", b, err)
	}
	if n, err := r.Skip(100); n != 14 || !errors.Is(err, io.EOF) {
		t.Fatalf("Skip past the end = %d, %v; want 14, EOF", n, err)
	}
}
