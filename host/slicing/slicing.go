// Package slicing is the slicer feature on the host's side (DESIGN §6):
// segment meta objects, segments, their stitching on delivery, and the
// slicer plugin's verdict. A sliced object is a segment meta object — the
// origin's headers, no body — plus segments cached as objects of their
// own under SegmentPrefix(key)+gen+":"+index. Each segment is fetched by a
// subrequest over the self socket (header HeaderSegment), so it goes
// through the whole state machine: its own transaction, cache lookup,
// coalescing and counters. The origin gets `Range` plus `If-Match` (or
// `If-Unmodified-Since`), and every segment is checked against the meta
// object's validators and length before it is stored or delivered: a
// response never mixes bytes of two versions of the origin object.
//
// Work begun under one version may end after the origin changed again
// (issue 13, item 11), so a meta object is replaced only by one from a
// later origin answer, or by the revalidation of itself (insertMeta), and
// removed only if it is still the one stored (outdate); a delivery holds
// its meta object by generation, and its segment subrequests go on under
// it whatever is stored under the key meanwhile: the origin's If-Match
// says whether they still may.
//
// It attaches to the state machine through the server's interfaces
// (host/server feature.go): a FetchStep on slice routes (step.go), the
// Delivery of meta objects (deliver.go) and the segment subrequests
// (segment.go).
package slicing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/store"
	"github.com/edgehost/edgehost/plugins/pluginapi"
)

// HeaderSegment marks a segment subrequest: "<gen> <index>".
const HeaderSegment = "Edgehost-Segment"

var (
	errNotSliceable    = server.NewStatusError(http.StatusServiceUnavailable, errors.New("object not eligible for slicing"))
	errSegmentMismatch = server.NewStatusError(http.StatusBadGateway, errors.New("segment does not match its meta object (the origin object changed)"))
)

// Cache is what slicing does with the cache.
type Cache interface {
	Lookup(key string, reqHeader http.Header, now time.Time) *cache.Object
	Insert(o *cache.Object)
	Remove(o *cache.Object)
}

// Plugins gives the slicer plugins by name (pluginhost.Manager).
type Plugins interface {
	Slicer(name string) (pluginapi.Slicer, error)
}

// Options construct the feature.
type Options struct {
	Logger  *slog.Logger
	Cache   Cache
	Flights *cache.Flights // the server's (server.Options.Flights)
	Metrics *observe.Metrics
	TxLog   *observe.TxLog
	Plugins Plugins // nil: no plugins
}

// Slicing is the feature. Lifecycle: New (no side effects) → attached by
// the server to every config → Close.
type Slicing struct {
	log     *slog.Logger
	cache   Cache
	flights *cache.Flights
	metrics *observe.Metrics
	txlog   *observe.TxLog
	plugins Plugins

	mu   sync.Mutex
	sock string       // the self socket selfClient dials
	self *http.Client // sends segment subrequests to the self socket

	// The meta objects being delivered, by key and generation: a segment
	// subrequest of a delivery goes on under its parent's meta object
	// even when the one stored under the key is now another (issue 13,
	// item 11: a response that started with a version the origin still
	// serves is not cut off).
	heldMu sync.Mutex
	held   map[heldKey]*heldMeta

	// storeMu makes the check and the insert of a meta object one step
	// (insertMeta): old work never replaces a newer meta object, nor
	// stores one of a version the origin was seen to have left
	// (outdated: by key and generation, when).
	storeMu  sync.Mutex
	outdated map[heldKey]time.Time
}

type heldKey struct{ key, gen string }

type heldMeta struct {
	meta *cache.Object
	sm   sliceMeta
	n    int
}

// New returns the feature.
func New(opts Options) *Slicing {
	s := &Slicing{log: opts.Logger, cache: opts.Cache, flights: opts.Flights, metrics: opts.Metrics, txlog: opts.TxLog, plugins: opts.Plugins,
		held: map[heldKey]*heldMeta{}, outdated: map[heldKey]time.Time{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.flights == nil {
		s.flights = &cache.Flights{}
	}
	if s.metrics == nil {
		s.metrics = &observe.Metrics{}
	}
	if s.txlog == nil {
		s.txlog = observe.NewTxLog(1024)
	}
	return s
}

// Close ends the self socket's idle connections.
func (sl *Slicing) Close() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.self != nil {
		sl.self.CloseIdleConnections()
	}
}

// Attach gives a slice route its fetch step.
func (sl *Slicing) Attach(cfg *config.Config, route *config.Route) (server.Steps, error) {
	if route.Slice == nil {
		return server.Steps{}, nil
	}
	sl.selfSocket(cfg.Listen.Self)
	return server.Steps{Fetch: &sliceStep{sl: sl, route: route, cfg: route.Slice}}, nil
}

// selfSocket points the subrequest client at sock.
func (sl *Slicing) selfSocket(sock string) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.self != nil && sl.sock == sock {
		return
	}
	sl.sock = sock
	sl.self = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
	}}
}

func (sl *Slicing) client() *http.Client {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.self
}

// Kind is the kind of object that slicing delivers: meta objects.
func (sl *Slicing) Kind() uint8 { return store.KindSegmentMeta }

// Subrequest names the segment subrequests' header and kind.
func (sl *Slicing) Subrequest() (header, kind string) { return HeaderSegment, "segment" }

// sliceMeta is what a meta object records beyond the origin's headers.
type sliceMeta struct {
	size, segSize int64
	gen           string // validators digest: segments of another version never match
}

const sliceMetaVersion = 1

func encodeSliceMeta(m sliceMeta) []byte {
	b := []byte{sliceMetaVersion}
	b = binary.AppendUvarint(b, uint64(m.size))
	b = binary.AppendUvarint(b, uint64(m.segSize))
	return append(b, m.gen...)
}

func decodeSliceMeta(b []byte) (sliceMeta, bool) {
	if len(b) < 3 || b[0] != sliceMetaVersion {
		return sliceMeta{}, false
	}
	b = b[1:]
	size, n := binary.Uvarint(b)
	if n <= 0 {
		return sliceMeta{}, false
	}
	b = b[n:]
	seg, n := binary.Uvarint(b)
	if n <= 0 || seg == 0 {
		return sliceMeta{}, false
	}
	return sliceMeta{size: int64(size), segSize: int64(seg), gen: string(b[n:])}, true
}

// hold registers meta as delivered until the returned func is called.
func (sl *Slicing) hold(meta *cache.Object, sm sliceMeta) (release func()) {
	k := heldKey{meta.Key, sm.gen}
	sl.heldMu.Lock()
	h := sl.held[k]
	if h == nil {
		h = &heldMeta{meta: meta, sm: sm}
		sl.held[k] = h
	}
	h.n++
	sl.heldMu.Unlock()
	return func() {
		sl.heldMu.Lock()
		if h.n--; h.n == 0 {
			delete(sl.held, k)
		}
		sl.heldMu.Unlock()
	}
}

// heldMeta returns a meta object of key and generation gen that a
// delivery in progress holds.
func (sl *Slicing) heldMeta(key, gen string) (*cache.Object, sliceMeta, bool) {
	sl.heldMu.Lock()
	defer sl.heldMu.Unlock()
	if h := sl.held[heldKey{key, gen}]; h != nil {
		return h.meta, h.sm, true
	}
	return nil, sliceMeta{}, false
}

// generation names one version of one variant: segments of another never
// match.
func generation(etag, lastModified, variant string, size int64) string {
	h := sha256.Sum256([]byte(etag + "\x00" + lastModified + "\x00" + variant + "\x00" + strconv.FormatInt(size, 10)))
	return hex.EncodeToString(h[:6])
}

func segmentKey(key, gen string, idx int64) string {
	return cache.SegmentPrefix(key) + gen + ":" + strconv.FormatInt(idx, 10)
}

var (
	_ server.Feature      = (*Slicing)(nil)
	_ server.KindDelivery = (*Slicing)(nil)
	_ server.Subrequests  = (*Slicing)(nil)
	_ server.FetchStep    = (*sliceStep)(nil)
	_ server.FetchStep    = (*segStep)(nil)
)
