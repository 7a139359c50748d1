package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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

// pullSource is a step for Stream.SetPull: chunk bytes of body per call,
// counting calls and failing the test if two ever overlap.
type pullSource struct {
	t       *testing.T
	s       *Stream
	body    []byte
	chunk   int
	off     int
	calls   atomic.Int64
	running atomic.Bool
}

func (p *pullSource) step() bool {
	if !p.running.CompareAndSwap(false, true) {
		p.t.Error("two pull steps ran at once")
	}
	defer p.running.Store(false)
	p.calls.Add(1)
	n := min(p.chunk, len(p.body)-p.off)
	p.s.Write(p.body[p.off : p.off+n])
	p.off += n
	return p.off < len(p.body)
}

func patternBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// A reader short of bytes runs the writer's step itself: with the writer's
// own goroutine held back (HoldPull) and never running Pull, a reader
// still gets the whole body (issue 15, item 4).
func TestStreamReaderPulls(t *testing.T) {
	s := NewStream()
	src := &pullSource{t: t, s: s, body: patternBody(300 << 10), chunk: 64 << 10}
	s.HoldPull()
	s.SetPull(src.step)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := s.Reader(ctx)
	got := make([]byte, len(src.body))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read: %v (the reader did not pull)", err)
	}
	if !bytes.Equal(got, src.body) {
		t.Fatal("reader got other bytes than the source's")
	}
	if got, want := src.calls.Load(), int64(5); got != want {
		t.Errorf("steps run: %d, want %d", got, want)
	}
	// The source ended: the reader waits for the writer's verdict
	// instead of running the step again.
	done := make(chan error, 1)
	go func() { _, err := r.Read(make([]byte, 1)); done <- err }()
	s.Close(nil)
	if err := <-done; err != io.EOF {
		t.Errorf("read after the end: %v, want EOF", err)
	}
	if got, want := src.calls.Load(), int64(5); got != want {
		t.Errorf("steps run after the end: %d, want %d", got, want)
	}
}

// Pull's goroutine and several readers take turns on the step, never at
// once, and every reader gets the body whole.
func TestStreamPullShared(t *testing.T) {
	s := NewStream()
	src := &pullSource{t: t, s: s, body: patternBody(2 << 20), chunk: 16 << 10}
	s.SetPull(src.step)
	errs := make(chan error, 4)
	for range 4 {
		r := s.Reader(context.Background())
		go func() {
			got, err := io.ReadAll(r)
			if err == nil && !bytes.Equal(got, src.body) {
				err = errors.New("reader got other bytes than the source's")
			}
			errs <- err
		}()
	}
	s.Pull()
	s.Close(nil)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got, want := src.calls.Load(), int64(128); got != want {
		t.Errorf("steps run: %d, want %d", got, want)
	}
}

// After HoldPull, Pull's goroutine reads nothing until ReleasePull, and
// reads anyway once leadWait has passed.
func TestStreamHoldPull(t *testing.T) {
	defer func(d time.Duration) { leadWait = d }(leadWait)
	for _, tt := range []struct {
		name    string
		wait    time.Duration
		release bool
	}{
		{"released", time.Hour, true},
		{"lead never came", 20 * time.Millisecond, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leadWait = tt.wait
			s := NewStream()
			src := &pullSource{t: t, s: s, body: patternBody(100 << 10), chunk: 64 << 10}
			s.HoldPull()
			s.SetPull(src.step)
			pulled := make(chan struct{})
			go func() { s.Pull(); close(pulled) }()
			if tt.release {
				time.Sleep(20 * time.Millisecond)
				if n := src.calls.Load(); n != 0 {
					t.Fatalf("Pull ran %d steps before ReleasePull", n)
				}
				s.ReleasePull()
				s.ReleasePull() // twice is harmless
			}
			select {
			case <-pulled:
			case <-time.After(10 * time.Second):
				t.Fatal("Pull did not end")
			}
			if got, want := src.calls.Load(), int64(2); got != want {
				t.Errorf("steps run: %d, want %d", got, want)
			}
		})
	}
}

// A stream of known length starts small and grows in steps (the whole
// length allocated at once cost 0.3–2 ms before the first byte of a 5
// MiB segment), and ends at exactly that length, without spare capacity.
func TestStreamExpectGrowsInSteps(t *testing.T) {
	const total, chunk = 5 << 20, 64 << 10
	s := NewStream()
	s.Expect(total)
	if got := cap(s.buf); got > firstCap {
		t.Fatalf("capacity before the first byte: %d, want at most %d", got, firstCap)
	}
	body := patternBody(total)
	allocs := 0
	for off := 0; off < total; off += chunk {
		before := cap(s.buf)
		s.Write(body[off : off+chunk])
		if cap(s.buf) != before {
			allocs++
		}
	}
	s.Close(nil)
	got, err := s.Bytes()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body differs (err %v)", err)
	}
	if cap(got) != total {
		t.Errorf("final capacity %d, want %d", cap(got), total)
	}
	// 256 KiB → 1 MiB → 5 MiB.
	if allocs != 2 {
		t.Errorf("%d reallocations, want 2", allocs)
	}
}

// TestStreamSpillDropsLaggard: a reader of a spilled stream that takes
// nothing while the writer waits on it is let go after laggardAfter (its
// Next then fails with ErrLagging) and the others get the whole body; a
// reader that is slow but keeps taking pieces keeps its place.
func TestStreamSpillDropsLaggard(t *testing.T) {
	defer func(a time.Duration, p int) { laggardAfter, spilledPiece = a, p }(laggardAfter, spilledPiece)
	laggardAfter, spilledPiece = 200*time.Millisecond, 16<<10
	const window, chunk, total = 64 << 10, 16 << 10, 1 << 20
	s := NewStream()
	fast, steady, stalled := s.Cursor(), s.Cursor(), s.Cursor()
	s.Spill(window)
	body := make([]byte, total)
	for i := range body {
		body[i] = byte(i * 5 / 3)
	}
	read := func(c *Cursor, pause time.Duration, out chan<- error) {
		var got []byte
		for {
			p, end, err := c.Next(context.Background())
			got = append(got, p...)
			if end {
				if err == nil && !bytes.Equal(got, body) {
					err = fmt.Errorf("%d bytes, not the body", len(got))
				}
				out <- err
				return
			}
			time.Sleep(pause)
		}
	}
	fastErr, steadyErr := make(chan error, 1), make(chan error, 1)
	go read(fast, 0, fastErr)
	go read(steady, laggardAfter/4, steadyErr) // 16 KiB per 50 ms: slow, never still
	start := time.Now()
	s.Write(body[:chunk])
	if _, _, err := stalled.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	// stalled took its first piece and never asks again.
	for off := chunk; off < total; off += chunk {
		if _, err := s.Write(body[off : off+chunk]); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(nil)
	if err := <-fastErr; err != nil {
		t.Fatalf("fast reader: %v", err)
	}
	if err := <-steadyErr; err != nil {
		t.Fatalf("slow but steady reader: %v", err)
	}
	if d := time.Since(start); d > 20*laggardAfter {
		t.Errorf("the body took %v to write with a stalled reader (laggardAfter %v)", d, laggardAfter)
	}
	if _, end, err := stalled.Next(context.Background()); !end || !errors.Is(err, ErrLagging) {
		t.Errorf("the stalled reader's next Next: end %v err %v, want ErrLagging", end, err)
	}
}
