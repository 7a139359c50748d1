package sandbox

import (
	"encoding/binary"
	"testing"
)

// fakeMem is a program's memory for tests: addresses from base.
type fakeMem struct {
	base int64
	b    []byte
}

func (m *fakeMem) ReadAt(p []byte, addr int64) (int, error) {
	if addr < m.base || addr-m.base+int64(len(p)) > int64(len(m.b)) {
		return 0, errFault
	}
	return copy(p, m.b[addr-m.base:]), nil
}

func (m *fakeMem) WriteAt(p []byte, addr int64) (int, error) {
	if addr < m.base || addr-m.base+int64(len(p)) > int64(len(m.b)) {
		return 0, errFault
	}
	return copy(m.b[addr-m.base:], p), nil
}

func TestEncodeRequest(t *testing.T) {
	b := encodeRequest(&RequestInfo{Method: "GET", URL: "/a/b?x=1", Host: "h", Tenant: "t",
		Headers: [][2]string{{"Accept", "*/*"}}, Depth: 2, ID: 7})
	le := binary.LittleEndian
	str := func(off int) string {
		o, n := le.Uint32(b[off:]), le.Uint32(b[off+4:])
		return string(b[o : o+n])
	}
	if got := [...]string{str(32), str(40), str(48), str(56), str(64), str(72)}; got != [...]string{"GET", "/a/b?x=1", "/a/b", "x=1", "h", "t"} {
		t.Errorf("strings = %q", got)
	}
	if le.Uint32(b[0:]) != uint32(len(b)) || le.Uint16(b[4:]) != ABIVersion || le.Uint64(b[8:]) != 7 || le.Uint32(b[88:]) != 2 {
		t.Errorf("head = % x", b[:128])
	}
	if le.Uint32(b[80:]) != 1 {
		t.Fatalf("num_headers = %d", le.Uint32(b[80:]))
	}
	h := le.Uint32(b[84:])
	if h%8 != 0 || str(int(h)) != "Accept" || str(int(h)+8) != "*/*" {
		t.Errorf("header table at %d", h)
	}
}

// FuzzDecodeResponse: whatever a program puts in its memory, decoding its
// response neither panics nor reads outside it.
func FuzzDecodeResponse(f *testing.F) {
	seed := make([]byte, 256)
	le := binary.LittleEndian
	le.PutUint16(seed[0:], 200)
	le.PutUint64(seed[32:], 0x1000+100)
	le.PutUint64(seed[40:], 5)
	copy(seed[100:], "hello")
	f.Add(seed, uint64(0x1000))
	f.Fuzz(func(t *testing.T, mem []byte, addr uint64) {
		m := &fakeMem{base: 0x1000, b: mem}
		r, e := decodeResponse(m, addr, 1<<20)
		if e == 0 && (r.Status < 100 || r.Status > 599) {
			t.Fatalf("status %d accepted", r.Status)
		}
		decodeFetch(m, addr)
	})
}
