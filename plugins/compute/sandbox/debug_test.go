package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestGDBRegsRoundTrip(t *testing.T) {
	r := unix.PtraceRegs{Rax: 1, Rbx: 2, Rcx: 3, Rdx: 4, Rsi: 5, Rdi: 6, Rbp: 7, Rsp: 8, R8: 9, R15: 16, Rip: 0x401000, Eflags: 0x246, Cs: 0x33, Ss: 0x2b}
	b := packRegs(&r)
	if len(b) != gRegsLen {
		t.Fatalf("g packet of %d bytes, want %d", len(b), gRegsLen)
	}
	// GDB's amd64 order: rip is register 16, eflags 17, cs 18.
	if got := b[16*8]; got != 0x00 || b[16*8+1] != 0x10 || b[16*8+2] != 0x40 {
		t.Errorf("rip bytes % x", b[16*8:16*8+8])
	}
	if b[17*8] != 0x46 || b[17*8+4] != 0x33 {
		t.Errorf("eflags/cs bytes % x", b[17*8:17*8+8])
	}
	var back unix.PtraceRegs
	unpackRegs(&back, b)
	if back.Rax != 1 || back.R15 != 16 || back.Rip != 0x401000 || back.Eflags != 0x246 {
		t.Errorf("round trip: %+v", back)
	}
}

func TestGDBAddrLen(t *testing.T) {
	for _, tt := range []struct {
		in   string
		addr uint64
		n    int
		ok   bool
	}{
		{"4018dc,4", 0x4018dc, 4, true},
		{"4018dc,1,1", 0x4018dc, 1, true}, // Z0's kind
		{"zz,4", 0, 0, false},
		{"4018dc", 0, 0, false},
	} {
		addr, n, ok := addrLen(tt.in)
		if ok != tt.ok || (ok && (addr != tt.addr || n != tt.n)) {
			t.Errorf("addrLen(%q) = %#x, %d, %v", tt.in, addr, n, ok)
		}
	}
}

// stubOn returns a stub reading data, with its acknowledgements
// discarded.
func stubOn(data []byte) *gdbStub {
	a, b := net.Pipe()
	go io.Copy(io.Discard, b)
	return &gdbStub{conn: a, rd: bufio.NewReader(bytes.NewReader(data))}
}

func TestGDBReadPacket(t *testing.T) {
	pkt := func(s string) string { return fmt.Sprintf("$%s#%02x", s, checksum(s)) }
	s := stubOn([]byte("+" + pkt("qSupported:multiprocess+") + "$g#00" + pkt("g") + "\x03" + pkt("m4018dc,4")))
	var got []string
	for {
		p, intr, err := s.readPacket()
		if err != nil {
			break
		}
		if intr {
			p = "^C"
		}
		got = append(got, p)
	}
	// A packet with a bad checksum is skipped (and NAKed).
	if want := "qSupported:multiprocess+|g|^C|m4018dc,4"; strings.Join(got, "|") != want {
		t.Fatalf("packets %q, want %q", strings.Join(got, "|"), want)
	}
}

func FuzzGDBPacket(f *testing.F) {
	f.Add([]byte("$g#67"))
	f.Add([]byte("$m4018dc,4#00\x03$Z0,4018dc,1#ab"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := stubOn(data)
		for i := 0; i < 100; i++ {
			p, _, err := s.readPacket()
			if err != nil {
				return
			}
			addrLen(p)
		}
	})
}
