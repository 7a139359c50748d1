package sandbox

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/edgehost/edgehost/kvm"
)

// backend = "auto" measures instead of assuming (NOTES: on kvm_pvm a guest
// call costs ~45 µs, more than a seccomp notification): a probe program
// that makes n ABI calls and then waits for a request boots under each
// backend with n = 1 and n = 1+probeCalls; the difference over probeCalls
// is the cost of one call there. kvm wins when it is usable and not
// slower. Measured once per plugin process.

const probeCalls = 200

var (
	choiceOnce sync.Once
	choiceKVM  bool
	choiceWhy  string
)

func kvmChoice() (bool, string) {
	choiceOnce.Do(func() { choiceKVM, choiceWhy = measureChoice() })
	return choiceKVM, choiceWhy
}

func measureChoice() (bool, string) {
	info, err := kvm.ProbeInfo()
	if err != nil {
		return false, "kvm unavailable: " + err.Error()
	}
	k, err := CallCost("kvm")
	if err != nil {
		return false, info.Flavour.String() + " kvm self-test failed: " + err.Error()
	}
	p, err := CallCost("process")
	if err != nil {
		return true, fmt.Sprintf("%s kvm call %v; process self-test failed: %v", info.Flavour, k, err)
	}
	if k <= p {
		return true, fmt.Sprintf("%s kvm call %v ≤ process call %v", info.Flavour, k.Round(100*time.Nanosecond), p.Round(100*time.Nanosecond))
	}
	return false, fmt.Sprintf("%s kvm call %v > process call %v", info.Flavour, k.Round(100*time.Nanosecond), p.Round(100*time.Nanosecond))
}

// CallCost measures one ABI call's round trip under a backend with the
// probe program.
func CallCost(kind string) (time.Duration, error) {
	boot := func(n uint32) (time.Duration, error) {
		t := &Tenant{name: "probe", log: hclog.NewNullLogger(), stop: make(chan struct{})}
		t.cfg = Settings{Backend: kind, MaxMemory: 16 << 20}
		t.cfg.Defaults()
		t.cfg.Ephemeral = false
		var be backend
		var err error
		if kind == "kvm" {
			be, err = newKVMBackend(t, probeELF(n))
		} else {
			be, err = newProcessBackend(t, probeELF(n))
		}
		if err != nil {
			return 0, err
		}
		defer be.close()
		start := time.Now()
		inst, err := be.boot()
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		inst.close()
		return d, nil
	}
	best := func(n uint32) (time.Duration, error) {
		var b time.Duration
		for i := 0; i < 3; i++ {
			d, err := boot(n)
			if err != nil {
				return 0, err
			}
			if i == 0 || d < b {
				b = d
			}
		}
		return b, nil
	}
	one, err := best(1)
	if err != nil {
		return 0, err
	}
	many, err := best(1 + probeCalls)
	if err != nil {
		return 0, err
	}
	return max(many-one, 0) / probeCalls, nil
}

// probeELF is a static x86-64 ELF (ET_EXEC) that makes n EH_CALL_ABI
// calls, then asks for requests forever with a 4 KiB buffer in its bss.
func probeELF(n uint32) []byte {
	const base, bss = 0x400000, 0x401000
	code := []byte{
		0x41, 0xbc, 0, 0, 0, 0, // mov r12d, n
		0xb8, 0x00, 0x00, 0x01, 0x00, // l: mov eax, 0x10000
		0x0f, 0x05, // syscall
		0x41, 0xff, 0xcc, // dec r12d
		0x75, 0xf4, // jnz l
		0xb8, 0x01, 0x00, 0x01, 0x00, // w: mov eax, 0x10001
		0xbf, 0x00, 0x10, 0x40, 0x00, // mov edi, bss
		0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi, 4096
		0x0f, 0x05, // syscall
		0xeb, 0xed, // jmp w
	}
	binary.LittleEndian.PutUint32(code[2:], n)
	const ehsize, phsize = 64, 56
	off := ehsize + 2*phsize
	b := make([]byte, off+len(code))
	le := binary.LittleEndian
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // x86-64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+uint64(off)) // entry
	le.PutUint64(b[32:], ehsize)           // phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 2)
	ph := func(i int, flags uint32, offset, vaddr, filesz, memsz uint64) {
		p := b[ehsize+i*phsize:]
		le.PutUint32(p[0:], 1) // PT_LOAD
		le.PutUint32(p[4:], flags)
		le.PutUint64(p[8:], offset)
		le.PutUint64(p[16:], vaddr)
		le.PutUint64(p[24:], vaddr)
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], memsz)
		le.PutUint64(p[48:], 0x1000)
	}
	ph(0, 5, 0, base, uint64(len(b)), uint64(len(b))) // R-X
	ph(1, 6, 0, bss, 0, 0x1000)                       // RW-
	copy(b[off:], code)
	return b
}
