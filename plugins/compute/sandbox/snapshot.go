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
	// kept open: a /proc file costs open, read and close each time
	statm, pagemap, clearRefs *os.File
	regions                   []region
	site                      string // the size of the address space (statm)
	dirty                     bool   // soft-dirty tracking: restore only pages written since
}

type region struct {
	start, end uint64
	file       bool // a private mapping of a file (the program's .data)
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
	site, err := vmSize(pid)
	if err != nil {
		return nil, err
	}
	// Read only the pages that are there: reading the others would map
	// them (the zero page), and every later restore would write them back.
	// A file mapping's pages are all read: one not there yet reads as the
	// file's contents, not zero.
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	defer pm.Close()
	for i := range rs {
		r := &rs[i]
		r.data = make([]byte, r.end-r.start)
		pages := (r.end - r.start) / pageSize
		entries := make([]byte, pages*8)
		if _, err := pm.ReadAt(entries, int64(r.start/pageSize*8)); err != nil {
			return nil, fmt.Errorf("pagemap: %w", err)
		}
		there := func(p uint64) bool {
			return r.file || binary.LittleEndian.Uint64(entries[p*8:])&(1<<63|1<<62) != 0
		}
		for p := uint64(0); p < pages; {
			if !there(p) {
				p++
				continue
			}
			q := p
			for q < pages && there(q) {
				q++
			}
			if _, err := (procMem{pid}).ReadAt(r.data[p*pageSize:q*pageSize], int64(r.start+p*pageSize)); err != nil {
				return nil, fmt.Errorf("read %#x-%#x: %w", r.start, r.end, err)
			}
			p = q
		}
	}
	s := &memSnapshot{regions: rs, site: site}
	if s.statm, err = os.Open(fmt.Sprintf("/proc/%d/statm", pid)); err != nil {
		return nil, err
	}
	if s.pagemap, err = os.Open(fmt.Sprintf("/proc/%d/pagemap", pid)); err != nil {
		s.close()
		return nil, err
	}
	if softDirtyWorks() {
		s.clearRefs, err = os.OpenFile(fmt.Sprintf("/proc/%d/clear_refs", pid), os.O_WRONLY, 0)
		if err == nil {
			_, err = s.clearRefs.Write([]byte("4"))
		}
		if err != nil {
			s.close()
			return nil, err
		}
		s.dirty = true
	}
	return s, nil
}

func (s *memSnapshot) close() {
	for _, f := range []*os.File{s.statm, s.pagemap, s.clearRefs} {
		if f != nil {
			f.Close()
		}
	}
}

func (s *memSnapshot) size() (string, error) {
	var b [64]byte
	n, err := s.statm.ReadAt(b[:], 0)
	if n == 0 && err != nil {
		return "", err
	}
	size, _, _ := strings.Cut(string(b[:n]), " ")
	return size, nil
}

// restore puts the snapshot's memory back, after checking that the layout
// and the waiting call site are the snapshot's.
//
// The checks are cheap ones (reading /proc/PID/maps costs 40 µs here,
// /proc/PID/syscall 15 µs, more than the rest of a reset): the total size
// of the mappings (/proc/PID/statm) must be the snapshot's, and the
// program must wait in the same instruction with the same NEXT arguments
// and stack pointer (the caller checks).
// They guard the program's own correctness, not the sandbox: whatever a
// restore writes goes only into the program's own memory, so a program
// that fools them (unmaps a region and maps another of the same size, or
// waits in a deeper frame) breaks only itself, and a fault recycles it.
func (s *memSnapshot) restore(pid int) error {
	size, err := s.size()
	if err != nil {
		return err
	}
	if size != s.site {
		return errLayout
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
	// Which pages to write back, from the page map: with soft-dirty
	// tracking those written since the last restore; without it (this
	// machine's kernel has no CONFIG_MEM_SOFT_DIRTY) those present or
	// swapped, since a page that is in neither state reads as it did at
	// the snapshot (zero, or the file's contents for a private file
	// mapping never written), where a full write-back copied 320 KiB for
	// the hello program.
	mask := uint64(1)<<63 | 1<<62
	if s.dirty {
		mask = 1 << 55
	}
	{
		f := s.pagemap
		for _, r := range s.regions {
			pages := (r.end - r.start) / pageSize
			pm := make([]byte, pages*8)
			if _, err := f.ReadAt(pm, int64(r.start/pageSize*8)); err != nil {
				return fmt.Errorf("pagemap of %#x-%#x: %w", r.start, r.end, err)
			}
			for i := uint64(0); i < pages; i++ {
				if binary.LittleEndian.Uint64(pm[i*8:])&mask != 0 {
					if err := add(r.start+i*pageSize, r.data[i*pageSize:(i+1)*pageSize]); err != nil {
						return err
					}
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("process_vm_writev: %w", err)
	}
	if s.dirty {
		_, err := s.clearRefs.Write([]byte("4"))
		return err
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
		rs = append(rs, region{start: start, end: end, file: len(f) >= 5 && f[4] != "0"})
	}
	return rs, nil
}

// vmSize is the size of a process's mappings in pages (/proc/PID/statm).
func vmSize(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return "", err
	}
	size, _, _ := strings.Cut(string(b), " ")
	return size, nil
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
		for i := 0; i < 3 && !softDirtyOK; i++ {
			softDirtyOK = checkSoftDirty()
		}
	})
	return softDirtyOK
}

func checkSoftDirty() bool {
	return func() (ok bool) {
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
		return err == nil && after
	}()
}
