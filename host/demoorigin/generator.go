package demoorigin

import (
	"encoding/binary"
	"errors"
	"io"
)

// The generated bodies are a pure function of (offset, stream): tests on the
// far side of a cache can recompute any byte without asking the origin, and a
// segment stitched at the wrong offset or taken from another version never
// matches by accident (the function has no short period, unlike a repeated
// pattern). Eight bytes come from one splitmix64 step, written little-endian.

// streamBytes is the stream space of /bytes/N?seed=S objects (stream =
// streamBytes | S); /big objects use their version as the stream, so the two
// never share content.
const streamBytes = uint64(1) << 40

// genWord returns the k-th 8-byte word of a stream (splitmix64 finalizer).
func genWord(k, stream uint64) uint64 {
	x := k + stream*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func genByte(i int64, stream uint64) byte {
	u := uint64(i)
	return byte(genWord(u>>3, stream) >> (8 * (u & 7)))
}

// fill writes bytes off .. off+len(p)-1 of a stream into p.
func fill(p []byte, off int64, stream uint64) {
	i := 0
	for i < len(p) && (off+int64(i))&7 != 0 {
		p[i] = genByte(off+int64(i), stream)
		i++
	}
	k := uint64(off+int64(i)) >> 3
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], genWord(k, stream))
		k++
	}
	for ; i < len(p); i++ {
		p[i] = genByte(off+int64(i), stream)
	}
}

// BigByte returns the byte at offset i of the object that /big/N serves
// while the origin is at the given version (the content does not depend on
// N: /big/1m is a prefix of /big/256m).
func BigByte(i int64, version int) byte {
	return genByte(i, uint64(version))
}

// ErrNegativeOffset is returned by BigReaderAt.ReadAt for an offset below 0.
var ErrNegativeOffset = errors.New("demoorigin: negative offset")

// BigReaderAt reads the object /big/N serves at a version, without holding
// it in memory: io.NewSectionReader(BigReaderAt{Size: n, Version: v}, 0, n)
// gives its whole body, for checksums in tests.
type BigReaderAt struct {
	Size    int64
	Version int
}

// ReadAt implements io.ReaderAt.
func (b BigReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, ErrNegativeOffset
	}
	if off >= b.Size {
		return 0, io.EOF
	}
	n := len(p)
	if rem := b.Size - off; int64(n) > rem {
		n = int(rem)
	}
	fill(p[:n], off, uint64(b.Version))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

var _ io.ReaderAt = BigReaderAt{}
