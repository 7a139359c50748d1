package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/http"
	"slices"
	"time"
)

// ChunkSize is the largest body chunk stored under one bbolt key
// (DESIGN §3: bodies in chunks of at most 1 MiB, each with a checksum).
const ChunkSize = 1 << 20

// Object kinds. The store treats them alike; the slicer gives them meaning.
const (
	KindNormal      uint8 = 0 // a whole response
	KindSegmentMeta uint8 = 1 // a slicer meta object (no body of its own)
	KindSegment     uint8 = 2 // one segment of a sliced object
)

// Record is one cached response with its body.
type Record struct {
	Key        string      // primary cache key, e.g. "example.com/img/cat.png?x=1"
	Variant    string      // secondary key computed from Vary ("" = none)
	Status     int         // HTTP status code
	Header     http.Header // response header fields
	Body       []byte      // stored in chunks of ≤ ChunkSize, each with a crc32c
	Created    time.Time   // response time (freshness base)
	Expires    time.Time   // fresh until
	StaleUntil time.Time   // grace / stale-while-revalidate end
	KeepUntil  time.Time   // kept for revalidation until; zero = no limit. Past it the object is gone.
	Tags       []string    // Surrogate-Key / xkey tags, indexed for PurgeTag
	Kind       uint8       // KindNormal, KindSegmentMeta, KindSegment
	Parent     string      // for segments: the ID() of their meta object, else ""
	Extra      []byte      // opaque bytes of the cache layer, stored as-is
	// KeepBody, when set, is the body this object already has in the
	// store (from Open): Put rewrites the header and keeps the stored
	// chunks, Body is ignored (a header refreshed by a 304 does not copy
	// a large body through the heap). Put skips the record if the object
	// no longer has that body.
	KeepBody *Body
}

// bodyLen is the length of the body r stores.
func (r *Record) bodyLen() int64 {
	if r.KeepBody != nil {
		return r.KeepBody.size
	}
	return int64(len(r.Body))
}

// Header is a Record without its body, as Scan yields it.
type Header struct {
	Key        string
	Variant    string
	Status     int
	Header     http.Header
	BodySize   int64 // length of the body in bytes
	Created    time.Time
	Expires    time.Time
	StaleUntil time.Time
	KeepUntil  time.Time
	Tags       []string
	Kind       uint8
	Parent     string
	Extra      []byte
}

// ID is the stable object id of r: hex of sha256(Key)[:16] ‖ sha256(Variant)[:8]
// (48 hex digits). The variants of one key share the first 32 digits.
func (r *Record) ID() string { return ObjectID(r.Key, r.Variant) }

// ID is the object id of the object h describes (see Record.ID).
func (h *Header) ID() string { return ObjectID(h.Key, h.Variant) }

// ObjectID returns the id of the object stored under key and variant.
func ObjectID(key, variant string) string {
	id := makeID(key, variant)
	return hex.EncodeToString(id[:])
}

const (
	keyHashLen     = 16
	variantHashLen = 8
	idLen          = keyHashLen + variantHashLen
)

type objectID [idLen]byte

func keyPrefix(key string) [keyHashLen]byte {
	sum := sha256.Sum256([]byte(key))
	var p [keyHashLen]byte
	copy(p[:], sum[:keyHashLen])
	return p
}

func makeID(key, variant string) objectID {
	var id objectID
	k := keyPrefix(key)
	copy(id[:], k[:])
	v := sha256.Sum256([]byte(variant))
	copy(id[keyHashLen:], v[:variantHashLen])
	return id
}

func parseID(s string) (objectID, error) {
	var id objectID
	if hex.DecodedLen(len(s)) != idLen {
		return id, fmt.Errorf("store: object id %q: want %d hex digits", s, 2*idLen)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("store: object id %q: %w", s, err)
	}
	return id, nil
}

// The encoded object header (the value of objects/⟨id⟩). A fixed part comes
// first so that the index builder reads sizes and times without decoding
// the rest; all integers are big-endian:
//
//	0  u8   format (1)
//	1  u8   kind
//	2  u16  status
//	4  u32  number of body chunks
//	8  u64  body length
//	16 i64  created   (unix ns; math.MinInt64 = zero time)
//	24 i64  expires
//	32 i64  staleUntil
//	40 i64  keepUntil
//	48 ...  variable part: key, variant, parent (uvarint length ‖ bytes);
//	        header: uvarint number of names, then per name: name,
//	        uvarint number of values, values; tags: uvarint count, tags;
//	        extra; then u32 crc32c of each chunk
//	end-4   u32 crc32c (Castagnoli) of everything before it
//
// A hand-written encoding: Get of a small object decodes with a handful of
// allocations (all strings share one backing string), where encoding/gob
// costs tens.
const (
	headerFormat = 1
	fixedLen     = 48
	zeroTime     = math.MinInt64
	maxBody      = 1 << 50 // far above anything a cache stores; bounds a damaged length
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadHeader is wrapped by every decoding error; the store reports it to
// its callers as ErrCorrupt.
var errBadHeader = errors.New("store: bad object header")

// Bounds of what a unix-nanosecond int64 holds (years 1678 to 2262);
// times past them are clamped: a KeepUntil of year 9999 stays "forever".
var (
	minNS = time.Unix(0, math.MinInt64+1)
	maxNS = time.Unix(0, math.MaxInt64)
)

func timeNS(t time.Time) int64 {
	switch {
	case t.IsZero():
		return zeroTime
	case t.Before(minNS):
		return math.MinInt64 + 1
	case t.After(maxNS):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func nsTime(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// chunkCount is the number of chunks a body of n bytes is stored in.
func chunkCount(n int) int { return (n + ChunkSize - 1) / ChunkSize }

// encodeHeader appends r's encoded header to dst. The chunk checksums are
// computed here, from r.Body.
func encodeHeader(dst []byte, r *Record) []byte {
	n := int((r.bodyLen() + ChunkSize - 1) / ChunkSize)
	size := fixedLen + 8 + len(r.Key) + len(r.Variant) + len(r.Parent) + len(r.Extra) + 4*n + 4 + 4*binary.MaxVarintLen16
	for name, values := range r.Header {
		size += len(name) + 2
		for _, v := range values {
			size += len(v) + 2
		}
	}
	for _, t := range r.Tags {
		size += len(t) + 2
	}
	dst = slices.Grow(dst, size)
	dst = append(dst, headerFormat, r.Kind)
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Status))
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.bodyLen()))
	for _, t := range [...]time.Time{r.Created, r.Expires, r.StaleUntil, r.KeepUntil} {
		dst = binary.BigEndian.AppendUint64(dst, uint64(timeNS(t)))
	}
	dst = appendString(dst, r.Key)
	dst = appendString(dst, r.Variant)
	dst = appendString(dst, r.Parent)
	dst = binary.AppendUvarint(dst, uint64(len(r.Header)))
	for name, values := range r.Header {
		dst = appendString(dst, name)
		dst = binary.AppendUvarint(dst, uint64(len(values)))
		for _, v := range values {
			dst = appendString(dst, v)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Tags)))
	for _, t := range r.Tags {
		dst = appendString(dst, t)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Extra)))
	dst = append(dst, r.Extra...)
	if r.KeepBody != nil {
		dst = append(dst, r.KeepBody.crcs...)
	} else {
		for i := 0; i < n; i++ {
			dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(chunk(r.Body, i), castagnoli))
		}
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// chunk returns the i-th chunk of body.
func chunk(body []byte, i int) []byte {
	lo := i * ChunkSize
	return body[lo:min(lo+ChunkSize, len(body))]
}

// fixedHeader is the fixed part of an encoded header.
type fixedHeader struct {
	kind      uint8
	status    int
	chunks    int
	bodyLen   int64
	created   int64
	keepUntil int64
}

func decodeFixed(b []byte) (fixedHeader, error) {
	if len(b) < fixedLen+4 || b[0] != headerFormat {
		return fixedHeader{}, fmt.Errorf("%w: short or unknown format", errBadHeader)
	}
	f := fixedHeader{
		kind:      b[1],
		status:    int(binary.BigEndian.Uint16(b[2:])),
		chunks:    int(binary.BigEndian.Uint32(b[4:])),
		bodyLen:   int64(binary.BigEndian.Uint64(b[8:])),
		created:   int64(binary.BigEndian.Uint64(b[16:])),
		keepUntil: int64(binary.BigEndian.Uint64(b[40:])),
	}
	if f.bodyLen < 0 || f.bodyLen > maxBody || int64(f.chunks) != (f.bodyLen+ChunkSize-1)/ChunkSize {
		return fixedHeader{}, fmt.Errorf("%w: body length %d in %d chunks", errBadHeader, f.bodyLen, f.chunks)
	}
	return f, nil
}

// decoded is a decoded header plus what Get needs to read the body.
type decoded struct {
	Header
	chunks int
	crcs   []byte // 4 bytes a chunk; points into the encoded header (valid as long as it is)
}

// crc returns the checksum of chunk i.
func (d *decoded) crc(i int) uint32 { return binary.BigEndian.Uint32(d.crcs[4*i:]) }

// decodeHeader decodes an encoded header, copying everything out of b (b
// may point into a bbolt transaction) but the chunk checksums. It
// verifies the header's checksum.
func decodeHeader(b []byte) (*decoded, error) {
	f, err := decodeFixed(b)
	if err != nil {
		return nil, err
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadHeader)
	}
	// One string holds every string of the header: one allocation instead
	// of one per field name and value.
	d := decoder{s: string(body), off: fixedLen}
	h := &Header{
		Status:     f.status,
		Kind:       f.kind,
		BodySize:   f.bodyLen,
		Created:    nsTime(f.created),
		Expires:    nsTime(int64(binary.BigEndian.Uint64(b[24:]))),
		StaleUntil: nsTime(int64(binary.BigEndian.Uint64(b[32:]))),
		KeepUntil:  nsTime(f.keepUntil),
	}
	h.Key = d.str()
	h.Variant = d.str()
	h.Parent = d.str()
	// Never a nil map: callers may add fields to what Get returns.
	names := d.count(2)
	h.Header = make(http.Header, names)
	if names > 0 {
		// A header of n names has at least n values: size the shared value
		// array from the bytes left, capped by what they can hold.
		vals := make([]string, 0, min(len(d.s)-d.off, names*2))
		for i := 0; i < names && d.err == nil; i++ {
			name := d.str()
			nv := d.count(1)
			start := len(vals)
			for j := 0; j < nv && d.err == nil; j++ {
				vals = append(vals, d.str())
			}
			h.Header[name] = vals[start:len(vals):len(vals)]
		}
	}
	if nt := d.count(1); nt > 0 {
		h.Tags = make([]string, 0, nt)
		for i := 0; i < nt && d.err == nil; i++ {
			h.Tags = append(h.Tags, d.str())
		}
	}
	if extra := d.str(); extra != "" {
		h.Extra = []byte(extra)
	}
	if d.err == nil && len(d.s)-d.off != 4*f.chunks {
		d.err = fmt.Errorf("%w: %d bytes left for %d chunk checksums", errBadHeader, len(d.s)-d.off, f.chunks)
	}
	if d.err != nil {
		return nil, d.err
	}
	return &decoded{Header: *h, chunks: f.chunks, crcs: body[d.off:]}, nil
}

// decodeKeyVariant returns the Key and Variant of an encoded header without
// decoding the rest (Variants, DeleteKey).
func decodeKeyVariant(b []byte) (key, variant string, err error) {
	if _, err := decodeFixed(b); err != nil {
		return "", "", err
	}
	b = b[fixedLen : len(b)-4]
	field := func() (string, error) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", fmt.Errorf("%w: truncated key", errBadHeader)
		}
		f := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return f, nil
	}
	if key, err = field(); err != nil {
		return "", "", err
	}
	variant, err = field()
	return key, variant, err
}

// decodeTagsParent returns the tags and parent of an encoded header; the
// delete path needs them to clean the tags/ and children/ indexes.
func decodeTagsParent(b []byte) (tags []string, parent string, err error) {
	h, err := decodeHeader(b)
	if err != nil {
		return nil, "", err
	}
	return h.Tags, h.Parent, nil
}

type decoder struct {
	s   string
	off int
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	var shift uint
	for i := 0; ; i++ {
		if d.off >= len(d.s) || i == binary.MaxVarintLen64 {
			d.err = fmt.Errorf("%w: truncated varint", errBadHeader)
			return 0
		}
		c := d.s[d.off]
		d.off++
		if c < 0x80 {
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
}

// count reads a count of items that take at least minBytes each, and
// rejects counts the remaining bytes cannot hold (no huge allocations from
// a damaged header).
func (d *decoder) count(minBytes int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64((len(d.s)-d.off)/minBytes) {
		d.err = fmt.Errorf("%w: count %d past the end", errBadHeader, n)
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.off) {
		d.err = fmt.Errorf("%w: string of %d bytes past the end", errBadHeader, n)
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}
