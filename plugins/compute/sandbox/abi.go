// Package sandbox runs tenants' programs, static x86-64 ELF binaries
// written against the guest ABI (plugins/compute/sdk/edgehost.h), and
// answers HTTP requests with them. Two backends run the same binary and
// give byte-identical responses:
//
//   - process: a native process under a seccomp filter. The ABI's calls
//     (numbers from 0x10000) reach this package by seccomp user
//     notification; a small Linux allow-list passes; everything else
//     fails with ENOSYS. See process.go and stub.go.
//   - kvm: a VM per slot through package kvm, reset to a snapshot by
//     copy-on-write after every request. See kvm.go.
//
// The ABI itself (layouts and the calls' meaning) is backend-neutral and
// lives in this file and exchange.go: a backend only moves calls and
// memory.
package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ABIVersion is the guest ABI version served (EH_ABI_VERSION).
const ABIVersion = 1

// Backend numbers, as a program sees them in the high half of EH_CALL_ABI.
const (
	backendKVM     = 1
	backendProcess = 2
)

// Call numbers (EH_CALL_*). Numbers from callFirst to callLast are the
// ABI's; unknown ones answer -ENOSYS.
const (
	callFirst   = 0x10000
	callABI     = 0x10000
	callNext    = 0x10001
	callRequest = 0x10002
	callRead    = 0x10003
	callRespond = 0x10004
	callFetch   = 0x10005
	callClose   = 0x10006
	callLog     = 0x10007
)

// errno values (Linux's), returned negated.
const (
	eNOENT    = 2
	e2BIG     = 7
	eBADF     = 9
	eNOMEM    = 12
	eFAULT    = 14
	eINVAL    = 22
	eNOSYS    = 38
	eLOOP     = 40
	eNOBUFS   = 105
	eTIMEDOUT = 110
	ePERM     = 1
)

// Sizes of the fixed layouts (the header's _Static_asserts).
const (
	requestHeadSize = 128
	responseSize    = 80
	iovecSize       = 16
	fetchSize       = 80
	fetchResultSize = 128
	headerSize      = 16
	fetchCTMax      = 112
)

// Memory is a program's memory as a backend reaches it: addresses are the
// program's own. A read or write that is not wholly inside the program's
// mappings fails.
type Memory interface {
	ReadAt(p []byte, addr int64) (int, error)
	WriteAt(p []byte, addr int64) (int, error)
}

// errFault is a call's argument that points outside the program's memory.
var errFault = errors.New("bad address")

func readMem(m Memory, addr, n uint64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if addr+n < addr || int64(addr) < 0 {
		return nil, errFault
	}
	b := make([]byte, n)
	if k, err := m.ReadAt(b, int64(addr)); err != nil || uint64(k) != n {
		return nil, errFault
	}
	return b, nil
}

func writeMem(m Memory, addr uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if addr+uint64(len(b)) < addr || int64(addr) < 0 {
		return errFault
	}
	if k, err := m.WriteAt(b, int64(addr)); err != nil || k != len(b) {
		return errFault
	}
	return nil
}

// RequestInfo is what a program is told about a request.
type RequestInfo struct {
	Method, URL, Host, Tenant string
	Headers                   [][2]string // in order, names as sent
	BodyLen                   uint64
	ID                        uint64
	TimeLeftNS                uint64 // what the request may still take when delivered
	Depth                     uint32
	TxID                      string // the host's transaction, for self-requests' logs
	Error                     string // a second chance: why the request failed (EH_REQ_ERROR)
}

// encodeRequest lays a request out as struct eh_request followed by its
// strings and header table.
func encodeRequest(r *RequestInfo) []byte {
	path, query := r.URL, ""
	if u, err := url.ParseRequestURI(r.URL); err == nil {
		path = u.EscapedPath()
		query = u.RawQuery
	} else if i := strings.IndexByte(r.URL, '?'); i >= 0 {
		path, query = r.URL[:i], r.URL[i+1:]
	}
	b := make([]byte, requestHeadSize, requestHeadSize+len(r.URL)*2+len(r.Method)+len(r.Host)+len(r.Tenant)+64*len(r.Headers))
	str := func(field int, s string) {
		binary.LittleEndian.PutUint32(b[field:], uint32(len(b)))
		binary.LittleEndian.PutUint32(b[field+4:], uint32(len(s)))
		b = append(b, s...)
	}
	str(32, r.Method)
	str(40, r.URL)
	str(48, path)
	str(56, query)
	str(64, r.Host)
	str(72, r.Tenant)
	str(92, r.Error)
	// Header strings first, then the table (8-byte aligned).
	type span struct{ off, n uint32 }
	spans := make([]span, 0, 2*len(r.Headers))
	for _, h := range r.Headers {
		spans = append(spans, span{uint32(len(b)), uint32(len(h[0]))})
		b = append(b, h[0]...)
		spans = append(spans, span{uint32(len(b)), uint32(len(h[1]))})
		b = append(b, h[1]...)
	}
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	table := len(b)
	for _, s := range spans {
		b = binary.LittleEndian.AppendUint32(b, s.off)
		b = binary.LittleEndian.AppendUint32(b, s.n)
	}
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(len(b)))
	le.PutUint16(b[4:], ABIVersion)
	flags := uint16(0)
	if r.BodyLen > 0 {
		flags |= 1 // EH_REQ_HAS_BODY
	}
	if r.Error != "" {
		flags |= 4 // EH_REQ_ERROR
	}
	le.PutUint16(b[6:], flags)
	le.PutUint64(b[8:], r.ID)
	le.PutUint64(b[16:], r.BodyLen)
	le.PutUint64(b[24:], r.TimeLeftNS)
	le.PutUint32(b[80:], uint32(len(r.Headers)))
	le.PutUint32(b[84:], uint32(table))
	le.PutUint32(b[88:], r.Depth)
	return b
}

// Reply is a program's response.
type Reply struct {
	Status      int
	Headers     [][2]string
	ContentType string
	Body        []byte
	// TTLms and GraceMS: the program's caching wish; -1 = not cacheable
	// (TTL) or no grace.
	TTLms, GraceMS int64
	NoCache        bool
}

// limits on what one response may carry besides its body.
const (
	maxRespHeaders   = 256
	maxHeaderLine    = 16 << 10
	maxContentType   = 1 << 10
	defaultMaxBody   = 16 << 20
	maxFetchBodyRead = 64 << 20
)

// decodeResponse reads a struct eh_response at addr and what it points at.
func decodeResponse(m Memory, addr uint64, maxBody uint64) (*Reply, int64) {
	raw, err := readMem(m, addr, responseSize)
	if err != nil {
		return nil, -eFAULT
	}
	le := binary.LittleEndian
	r := &Reply{
		Status:  int(le.Uint16(raw[0:])),
		NoCache: le.Uint16(raw[2:])&1 != 0,
		TTLms:   int64(le.Uint64(raw[48:])),
		GraceMS: int64(le.Uint64(raw[56:])),
	}
	if r.Status < 100 || r.Status > 599 {
		return nil, -eINVAL
	}
	var errno int64
	if r.Headers, errno = readHeaders(m, le.Uint64(raw[8:]), uint64(le.Uint32(raw[4:]))); errno != 0 {
		return nil, errno
	}
	if n := uint64(le.Uint32(raw[24:])); n > 0 {
		if n > maxContentType {
			return nil, -e2BIG
		}
		ct, err := readMem(m, le.Uint64(raw[16:]), n)
		if err != nil {
			return nil, -eFAULT
		}
		r.ContentType = string(ct)
	}
	if n := le.Uint64(raw[40:]); n > 0 {
		if n > maxBody {
			return nil, -e2BIG
		}
		body, err := readMem(m, le.Uint64(raw[32:]), n)
		if err != nil {
			return nil, -eFAULT
		}
		r.Body = body
	}
	return r, 0
}

// readHeaders reads nh "Name: value" lines through the iovec array at
// addr (a response's or a fetch's header fields); the result is 0 or a
// negative errno.
func readHeaders(m Memory, addr, nh uint64) ([][2]string, int64) {
	if nh == 0 {
		return nil, 0
	}
	if nh > maxRespHeaders {
		return nil, -e2BIG
	}
	iov, err := readMem(m, addr, nh*iovecSize)
	if err != nil {
		return nil, -eFAULT
	}
	le := binary.LittleEndian
	out := make([][2]string, 0, nh)
	for i := uint64(0); i < nh; i++ {
		p, n := le.Uint64(iov[i*16:]), le.Uint64(iov[i*16+8:])
		if n > maxHeaderLine {
			return nil, -e2BIG
		}
		line, err := readMem(m, p, n)
		if err != nil {
			return nil, -eFAULT
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok || !validHeaderName(name) {
			return nil, -eINVAL
		}
		out = append(out, [2]string{name, strings.TrimSpace(value)})
	}
	return out, 0
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// FetchRequest is a program's fetch (struct eh_fetch).
type FetchRequest struct {
	Method, URL string
	Headers     [][2]string
	Body        []byte
	TimeoutMS   uint64
}

func decodeFetch(m Memory, addr uint64) (*FetchRequest, int64) {
	raw, err := readMem(m, addr, fetchSize)
	if err != nil {
		return nil, -eFAULT
	}
	le := binary.LittleEndian
	f := &FetchRequest{Method: "GET", TimeoutMS: le.Uint64(raw[56:])}
	ul := uint64(le.Uint32(raw[8:]))
	if ul == 0 || ul > 8192 {
		return nil, -eINVAL
	}
	u, err := readMem(m, le.Uint64(raw[0:]), ul)
	if err != nil {
		return nil, -eFAULT
	}
	f.URL = string(u)
	if ml := uint64(le.Uint32(raw[12:])); ml > 0 {
		if ml > 32 {
			return nil, -eINVAL
		}
		mb, err := readMem(m, le.Uint64(raw[16:]), ml)
		if err != nil {
			return nil, -eFAULT
		}
		f.Method = string(mb)
	}
	var errno int64
	if f.Headers, errno = readHeaders(m, le.Uint64(raw[24:]), uint64(le.Uint32(raw[32:]))); errno != 0 {
		return nil, errno
	}
	if bl := le.Uint64(raw[48:]); bl > 0 {
		if bl > defaultMaxBody {
			return nil, -e2BIG
		}
		body, err := readMem(m, le.Uint64(raw[40:]), bl)
		if err != nil {
			return nil, -eFAULT
		}
		f.Body = body
	}
	return f, 0
}

// FetchResult is what a fetch got.
type FetchResult struct {
	Status      int
	ContentType string
	Body        []byte
}

func encodeFetchResult(r *FetchResult) []byte {
	b := make([]byte, fetchResultSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(r.Status))
	ct := r.ContentType
	if len(ct) > fetchCTMax {
		ct = ct[:fetchCTMax]
	}
	le.PutUint32(b[4:], uint32(len(ct)))
	le.PutUint64(b[8:], uint64(len(r.Body)))
	copy(b[16:], ct)
	return b
}

// errnoName is for log lines.
func errnoName(e int64) string {
	switch -e {
	case eFAULT:
		return "EFAULT"
	case eINVAL:
		return "EINVAL"
	case e2BIG:
		return "E2BIG"
	case eNOSYS:
		return "ENOSYS"
	}
	return fmt.Sprintf("errno %d", -e)
}
