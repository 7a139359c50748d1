package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// memSnapshot is a process's writable memory at its snapshot point, and
// where it waited then (process backend; see process.go).
type memSnapshot struct {
	regions []region
	site    string // stack pointer of the NEXT call
	dirty   bool   // soft-dirty tracking: restore only pages written since
}

type region struct {
	start, end uint64
	data       []byte
}

// errLayout: the process no longer looks like its snapshot; it is
// recycled instead of restored.
var errLayout = errors.New("memory layout changed since the snapshot")

func takeSnapshot(pid int) (*memSnapshot, error) {
	rs, err := writableRegions(pid)
	if err != nil {
		return nil, err
	}
	site, err := callSite(pid)
	if err != nil {
		return nil, err
	}
	var total uint64
	for i := range rs {
		n := rs[i].end - rs[i].start
		total += n
		rs[i].data = make([]byte, n)
		if _, err := (procMem{pid}).ReadAt(rs[i].data, int64(rs[i].start)); err != nil {
			return nil, fmt.Errorf("read %#x-%#x: %w", rs[i].start, rs[i].end, err)
		}
	}
	s := &memSnapshot{regions: rs, site: site}
	if softDirtyWorks() && clearSoftDirty(pid) == nil {
		s.dirty = true
	}
	return s, nil
}

// restore puts the snapshot's memory back, after checking that the layout
// and the waiting call site are the snapshot's.
func (s *memSnapshot) restore(pid int) error {
	rs, err := writableRegions(pid)
	if err != nil {
		return err
	}
	if len(rs) != len(s.regions) {
		return errLayout
	}
	for i := range rs {
		if rs[i].start != s.regions[i].start || rs[i].end != s.regions[i].end {
			return errLayout
		}
	}
	site, err := callSite(pid)
	if err != nil {
		return err
	}
	if site != s.site {
		return fmt.Errorf("%w: the program waits at %s, not %s", errLayout, site, s.site)
	}
	var local []unix.Iovec
	var remote []unix.RemoteIovec
	flush := func() error {
		if len(local) == 0 {
			return nil
		}
		_, err := unix.ProcessVMWritev(pid, local, remote, 0)
		local, remote = local[:0], remote[:0]
		return err
	}
	add := func(addr uint64, b []byte) error {
		if n := len(local); n > 0 && remote[n-1].Base+uintptr(remote[n-1].Len) == uintptr(addr) &&
			uintptr(unsafe.Pointer(local[n-1].Base))+uintptr(local[n-1].Len) == uintptr(unsafe.Pointer(&b[0])) {
			local[n-1].Len += uint64(len(b))
			remote[n-1].Len += len(b)
			return nil
		}
		local = append(local, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
		remote = append(remote, unix.RemoteIovec{Base: uintptr(addr), Len: len(b)})
		if len(local) == 1024 {
			return flush()
		}
		return nil
	}
	if s.dirty {
		f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
		if err != nil {
			return err
		}
		defer f.Close()
		for _, r := range s.regions {
			pages := (r.end - r.start) / pageSize
			pm := make([]byte, pages*8)
			if _, err := f.ReadAt(pm, int64(r.start/pageSize*8)); err != nil {
				return fmt.Errorf("pagemap: %w", err)
			}
			for i := uint64(0); i < pages; i++ {
				if binary.LittleEndian.Uint64(pm[i*8:])&(1<<55) != 0 {
					if err := add(r.start+i*pageSize, r.data[i*pageSize:(i+1)*pageSize]); err != nil {
						return err
					}
				}
			}
		}
	} else {
		for _, r := range s.regions {
			if err := add(r.start, r.data); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("process_vm_writev: %w", err)
	}
	if s.dirty {
		return clearSoftDirty(pid)
	}
	return nil
}

const pageSize = 4096

// writableRegions lists a process's private writable mappings.
func writableRegions(pid int) ([]region, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	var rs []region
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		f := strings.Fields(string(line))
		if len(f) < 2 || len(f[1]) < 4 || f[1][0] != 'r' || f[1][1] != 'w' || f[1][3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rs = append(rs, region{start: start, end: end})
	}
	return rs, nil
}

// callSite is the stack pointer of the system call a blocked process
// waits in (/proc/PID/syscall: nr, six args, sp, pc). The instruction is
// not compared: compilers peel the first turn of a loop, so the first
// NEXT call (the snapshot's) is often another copy of the same call. The
// same stack pointer means the same frame depth; the registers are those
// of the loop, which eh_serve keeps constant.
func callSite(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 9 {
		return "", fmt.Errorf("/proc/%d/syscall: %q: not waiting in a call", pid, strings.TrimSpace(string(b)))
	}
	return f[7], nil
}

func clearSoftDirty(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("4"), 0)
}

var (
	softDirtyOnce sync.Once
	softDirtyOK   bool
)

// softDirtyWorks checks once, on this process, that the kernel tracks
// soft-dirty bits (CONFIG_MEM_SOFT_DIRTY): without them every restore
// writes back all of the snapshot.
func softDirtyWorks() bool {
	softDirtyOnce.Do(func() {
		mem, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return
		}
		defer unix.Munmap(mem)
		mem[0] = 1
		if clearSoftDirty(os.Getpid()) != nil {
			return
		}
		bit := func() (bool, error) {
			f, err := os.Open("/proc/self/pagemap")
			if err != nil {
				return false, err
			}
			defer f.Close()
			var e [8]byte
			if _, err := f.ReadAt(e[:], int64(uintptr(unsafe.Pointer(&mem[0]))/pageSize*8)); err != nil {
				return false, err
			}
			return binary.LittleEndian.Uint64(e[:])&(1<<55) != 0, nil
		}
		before, err := bit()
		if err != nil || before {
			return
		}
		mem[0] = 2
		after, err := bit()
		softDirtyOK = err == nil && after
	})
	return softDirtyOK
}
