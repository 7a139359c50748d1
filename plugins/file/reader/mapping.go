package reader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrChangedUnderfoot is returned by a read whose file was truncated or
// rewritten while it was being read: the bytes may mix two versions, so
// they are not delivered whole.
var ErrChangedUnderfoot = errors.New("file changed while it was read")

// mapping is one version of a file's contents, mapped read-only. It is
// reference counted: the reader holds one reference while the version is
// current, every Read holds one while it copies out, and the last release
// unmaps it. A mapping of an unlinked file stays valid (the kernel keeps
// the inode while it is mapped), which is how a deleted file keeps serving
// its last contents.
type mapping struct {
	data []byte
	refs atomic.Int64
}

// mapFile maps f's first size bytes. An empty file needs no mapping.
func mapFile(f *os.File, size int64) (*mapping, error) {
	m := &mapping{}
	m.refs.Store(1)
	if size == 0 {
		return m, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("file of %d bytes cannot be mapped", size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	m.data = data
	return m, nil
}

// acquire takes a reference unless the mapping is already gone.
func (m *mapping) acquire() bool {
	for {
		n := m.refs.Load()
		if n <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one unmaps.
func (m *mapping) release() {
	if m.refs.Add(-1) == 0 && m.data != nil {
		_ = unix.Munmap(m.data)
		m.data = nil
	}
}

// copyRange writes data[off:off+n] to w. A file truncated in place while
// mapped makes the pages past its new end fault (SIGBUS); the fault becomes
// a panic here, recovered into ErrChangedUnderfoot, instead of killing the
// plugin.
func copyRange(w io.Writer, data []byte, off, n int64) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrChangedUnderfoot, r)
		}
	}()
	// Each chunk is copied out of the mapping first, so that a fault
	// happens here, inside the recover, and not in the writer.
	buf := make([]byte, min(n, 64<<10))
	for n > 0 {
		c := min(n, int64(len(buf)))
		copy(buf[:c], data[off:off+c])
		if _, err := w.Write(buf[:c]); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}
