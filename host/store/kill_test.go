package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// killBody is the body of object i of the kill test: 2.5 chunks and a bit,
// different for every i.
func killBody(i int) []byte { return body(5*ChunkSize/2+i, uint64(i)) }

// TestKillDuringWrite: a process killed with SIGKILL while it writes large
// chunked objects leaves cache.db with whole objects only: every object
// it had finished writing reads back whole and right (whole or through a
// Body), and none is half there. The writer is this test binary run again
// (TestKillWriterHelper).
func TestKillDuringWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a writer process for a few seconds")
	}
	path := filepath.Join(t.TempDir(), "cache.db")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillWriterHelper$")
		cmd.Env = append(os.Environ(), "STORE_KILL_WRITER="+path, "STORE_KILL_FROM="+strconv.Itoa(round*1000))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it commit a few objects, then kill it at some point of
		// the next ones.
		sc := bufio.NewScanner(out)
		done := -1
		for sc.Scan() {
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				done = n
			}
			if done >= round*1000+3 {
				break
			}
		}
		time.Sleep(time.Duration(round*7) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		if done < 0 {
			t.Fatal("the writer committed nothing")
		}

		s, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatalf("round %d: Open after the kill: %v", round, err)
		}
		whole := 0
		for i := round * 1000; i < round*1000+1000; i++ {
			key := fmt.Sprintf("k%d", i)
			r, b, err := s.Open(key, "", ChunkSize)
			if errors.Is(err, ErrNotFound) {
				if i <= done {
					t.Errorf("round %d: object %d, committed before the kill, is gone", round, i)
				}
				continue
			}
			if err != nil {
				t.Fatalf("round %d: object %d: %v", round, i, err)
			}
			got := r.Body
			if b != nil {
				got, err = io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
			}
			if err != nil || !bytes.Equal(got, killBody(i)) {
				t.Fatalf("round %d: object %d reads %d bytes (%v), not its body", round, i, len(got), err)
			}
			whole++
		}
		if st := s.Stats(); st.Corrupt != 0 {
			t.Errorf("round %d: %d corrupt objects", round, st.Corrupt)
		}
		t.Logf("round %d: %d objects whole after the kill (%d acknowledged)", round, whole, done-round*1000+1)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKillWriterHelper is the writer of TestKillDuringWrite: it writes
// objects k<from>… until killed, printing each index once committed.
func TestKillWriterHelper(t *testing.T) {
	path := os.Getenv("STORE_KILL_WRITER")
	if path == "" {
		t.Skip("the writer process of TestKillDuringWrite")
	}
	from, _ := strconv.Atoi(os.Getenv("STORE_KILL_FROM"))
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+1000; i++ {
		if err := s.Put(&Record{Key: fmt.Sprintf("k%d", i), Status: 200, Body: killBody(i)}); err != nil {
			t.Fatal(err)
		}
		fmt.Println(i)
	}
	select {}
}
