package cache

import (
	"context"
	"errors"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/ban"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
	"github.com/edgehost/edgehost/host/store"
)

// Store is what the cache needs of the persistent tier (*store.Store):
// the parts below, each sized to the part of the cache that uses it.
type Store interface {
	Reader
	Writer
	BanStore
	Scanner
}

// Reader answers the lookups that miss the memory tier (loadFromDisk).
type Reader interface {
	Variants(key string) ([]string, error)
	// Open reads an object whose body is at most inline bytes whole, and
	// returns a larger body as a *store.Body to read chunk by chunk.
	Open(key, variant string, inline int64) (*store.Record, *store.Body, error)
}

// Writer applies the writer goroutine's batches (write).
type Writer interface {
	PutAll(rs ...*store.Record) error
	DeleteKey(key string) (int, error)
	Delete(key, variant string) error
	PurgeTag(tag string) ([]string, error)
}

// BanStore keeps the bans across restarts (Start, Ban, pruneBans).
type BanStore interface {
	AddBan(expr string, created time.Time) (store.Ban, error)
	Bans() ([]store.Ban, error)
	DeleteBansBefore(t time.Time) error
}

// Scanner walks the stored objects' headers (the lurker).
type Scanner interface {
	Scan(fn func(h *store.Header) bool) error
}

// Options configure a Cache.
type Options struct {
	MemoryBytes int64
	// FillBytes bounds the bodies being received to be stored, all
	// fetches together (0: MemoryBytes). A fetch that does not fit is
	// streamed through uncached (issue 13: 200 clients missing on distinct
	// 50 MiB objects held 10 GB).
	FillBytes int64
	Store     Store // nil = memory only
	Metrics   *observe.Metrics
	Logger    *slog.Logger
}

const shards = 64

type shard struct {
	mu sync.RWMutex
	m  map[string][]*Object // key → variants
}

// Cache is the two-tier object cache. Construct with New, then Start.
type Cache struct {
	opts    Options
	log     *slog.Logger
	metrics *observe.Metrics
	seed    maphash.Seed
	shards  [shards]shard
	bytes   atomic.Int64
	objects atomic.Int64
	filling atomic.Int64 // body bytes reserved by fetches in progress (ReserveFill)

	bans *ban.List

	// Ban pruning (the lurker): a ban can go once no object stored
	// before it can still be alive. maxKeep is the latest KeepUntil of any
	// object stored so far (unix ns; 0 until the store has been scanned),
	// banKeep the value it had when each ban was added.
	maxKeep atomic.Int64
	banMu   sync.Mutex
	banKeep map[uint64]int64

	writes  chan op
	tombMu  sync.Mutex
	tombs   map[string]time.Time // keys purged whose disk deletion may be pending
	tagTomb map[string]time.Time

	evictMu sync.Mutex

	loadMu sync.Mutex
	loads  map[string]*diskLoad // reads from the store in progress, by key

	wg      sync.WaitGroup
	cancel  context.CancelFunc
	stopped chan struct{} // closed when the writer has returned
}

// op is one write-behind operation, applied in order.
type op struct {
	put    *Object
	delKey string
	delObj *Object
	delTag string
	done   chan struct{}
}

// New returns a cache; it does nothing until Start.
func New(opts Options) *Cache {
	c := &Cache{opts: opts, log: opts.Logger, metrics: opts.Metrics, seed: maphash.MakeSeed(), banKeep: map[uint64]int64{},
		writes: make(chan op, writeQueue), tombs: map[string]time.Time{}, tagTomb: map[string]time.Time{},
		loads: map[string]*diskLoad{}}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.metrics == nil {
		c.metrics = &observe.Metrics{}
	}
	for i := range c.shards {
		c.shards[i].m = map[string][]*Object{}
	}
	c.bans = ban.NewList()
	return c
}

// Start loads persisted bans and starts the write-behind goroutine; it ends
// with ctx or Close.
func (c *Cache) Start(ctx context.Context) error {
	if c.opts.Store != nil {
		bans, err := c.opts.Store.Bans()
		if err != nil {
			return err
		}
		recs := make([]ban.Record, 0, len(bans))
		for _, b := range bans {
			if _, err := ban.Parse(b.Expr); err != nil {
				c.log.Warn("dropping unparsable persisted ban", "ban", b.Expr, "err", err)
				continue
			}
			recs = append(recs, ban.Record{Seq: b.ID, Time: b.Created, Expr: b.Expr})
		}
		list, err := ban.Restore(recs)
		if err != nil {
			return err
		}
		c.bans = list
		// Restored bans may be dropped once every object now on disk has
		// expired: the scan in the background finds when that is.
		for _, e := range list.Entries() {
			c.banKeep[e.Seq] = math.MaxInt64
		}
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.stopped = make(chan struct{})
	c.wg.Add(2)
	go c.writer(ctx)
	go c.lurker(ctx)
	return nil
}

// lurker prunes, once a minute, the bans that can no longer match anything
// and the tombstones whose deletions the writer has long applied.
func (c *Cache) lurker(ctx context.Context) {
	defer c.wg.Done()
	if c.opts.Store != nil {
		var latest int64
		c.opts.Store.Scan(func(h *store.Header) bool {
			latest = max(latest, h.KeepUntil.UnixNano(), h.StaleUntil.UnixNano())
			return ctx.Err() == nil
		})
		c.keep(latest)
		c.banMu.Lock()
		for seq, k := range c.banKeep {
			if k == math.MaxInt64 {
				c.banKeep[seq] = c.maxKeep.Load()
			}
		}
		c.banMu.Unlock()
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			c.pruneBans(now)
			c.sweepTombs(now.Add(-10 * time.Minute))
		}
	}
}

// keep records that an object lives until t (unix ns).
func (c *Cache) keep(t int64) {
	for {
		old := c.maxKeep.Load()
		if t <= old || c.maxKeep.CompareAndSwap(old, t) {
			return
		}
	}
}

// pruneBans drops the oldest bans whose objects have all expired.
func (c *Cache) pruneBans(now time.Time) int {
	var upTo uint64
	var upToTime time.Time
	c.banMu.Lock()
	for _, e := range c.bans.Entries() {
		if k, ok := c.banKeep[e.Seq]; !ok || k >= now.UnixNano() {
			break
		}
		upTo, upToTime = e.Seq, e.Time
		delete(c.banKeep, e.Seq)
	}
	c.banMu.Unlock()
	if upTo == 0 {
		return 0
	}
	n := c.bans.Prune(upTo)
	if c.opts.Store != nil {
		if err := c.opts.Store.DeleteBansBefore(upToTime.Add(time.Nanosecond)); err != nil {
			c.log.Warn("pruning persisted bans", "err", err)
		}
	}
	c.log.Debug("bans pruned", "count", n)
	return n
}

// Close flushes pending writes and stops.
func (c *Cache) Close() {
	if c.cancel == nil {
		return
	}
	c.Flush()
	c.cancel()
	c.wg.Wait()
}

// queue hands w to the writer (dropped once the writer has stopped).
func (c *Cache) queue(w op) {
	select {
	case c.writes <- w:
	case <-c.stopped:
	}
}

// sync queues w and waits until it is applied.
func (c *Cache) sync(w op) {
	w.done = make(chan struct{})
	c.queue(w)
	select {
	case <-w.done:
	case <-c.stopped:
	}
}

// Flush waits until every write queued so far has reached the store (or
// the writer has stopped).
func (c *Cache) Flush() {
	if c.cancel == nil {
		return
	}
	c.sync(op{})
}

func (c *Cache) shard(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)%shards]
}

// Lookup returns the object stored for key that the request's Vary-relevant
// headers select, or nil. It returns stale objects too: the caller decides
// with Fresh / InGrace / Revalidatable. Bans are applied here, lazily.
func (c *Cache) Lookup(key string, reqHeader http.Header, now time.Time) *Object {
	sh := c.shard(key)
	sh.mu.RLock()
	variants := sh.m[key]
	var o *Object
	for _, v := range variants {
		if matchVariant(v, reqHeader) {
			o = v
			break
		}
	}
	sh.mu.RUnlock()
	if o == nil {
		if len(variants) > 0 || c.opts.Store == nil {
			// The memory tier knows this key; other variants may still be
			// on disk only.
			if c.opts.Store == nil {
				return nil
			}
		}
		o = c.loadFromDisk(key, reqHeader)
		if o == nil {
			return nil
		}
	}
	if c.banned(o) {
		return nil
	}
	o.touch(now)
	return o
}

// Stored reports whether any response is stored for key, whatever its
// variant, that no ban or purge has killed: when Lookup found none for a
// request, the miss is then a vary-miss rather than a uri-miss (RFC 9211
// §2.2). Miss path only: it may read the store.
func (c *Cache) Stored(key string) bool {
	sh := c.shard(key)
	sh.mu.RLock()
	variants := slices.Clone(sh.m[key])
	sh.mu.RUnlock()
	for _, o := range variants {
		if !c.banned(o) {
			return true
		}
	}
	if c.opts.Store == nil {
		return false
	}
	vs, err := c.opts.Store.Variants(key)
	if err != nil {
		return false
	}
	for _, v := range vs {
		if o := c.diskObject(key, v); o != nil && !c.banned(o) {
			return true
		}
	}
	return false
}

// LookupFast is Lookup for the hit fast path: the memory tier only and
// only objects without Vary; nil means "ask Lookup". It does not allocate.
func (c *Cache) LookupFast(key []byte, now time.Time) *Object {
	sh := &c.shards[maphash.Bytes(c.seed, key)%shards]
	sh.mu.RLock()
	vs := sh.m[string(key)]
	var o *Object
	if len(vs) == 1 && vs[0].Variant == "" && len(vs[0].VaryNames) == 0 {
		o = vs[0]
	}
	sh.mu.RUnlock()
	if o == nil || c.banned(o) {
		return nil
	}
	o.touch(now)
	return o
}

// Matches reports whether o is the variant that a request with these
// header fields selects (Vary).
func (o *Object) Matches(reqHeader http.Header) bool { return matchVariant(o, reqHeader) }

func matchVariant(o *Object, reqHeader http.Header) bool {
	if len(o.VaryNames) == 0 {
		return o.Variant == ""
	}
	k, ok := httpcache.VaryKey(o.Header.Values("Vary"), reqHeader)
	return ok && k == o.Variant
}

// diskLoad is a read of one key from the store that concurrent lookups
// share.
type diskLoad struct {
	done chan struct{}
	o    *Object // set before done is closed
}

// loadFromDisk reads the variant matching the request from the store and
// promotes it to memory. Concurrent lookups of one key share one read
// (issue 13: each used to read, and hold, its own copy of the body); a
// waiter that needs another variant reads on its own afterwards.
func (c *Cache) loadFromDisk(key string, reqHeader http.Header) *Object {
	c.loadMu.Lock()
	if l, ok := c.loads[key]; ok {
		c.loadMu.Unlock()
		<-l.done
		if l.o != nil && !l.o.dead.Load() && matchVariant(l.o, reqHeader) {
			return l.o
		}
		return c.readDisk(key, reqHeader)
	}
	l := &diskLoad{done: make(chan struct{})}
	c.loads[key] = l
	c.loadMu.Unlock()
	defer func() {
		c.loadMu.Lock()
		delete(c.loads, key)
		c.loadMu.Unlock()
		close(l.done)
	}()
	l.o = c.readDisk(key, reqHeader)
	return l.o
}

func (c *Cache) readDisk(key string, reqHeader http.Header) *Object {
	var st Reader = c.opts.Store
	variants, err := st.Variants(key)
	if err != nil || len(variants) == 0 {
		return nil
	}
	for _, v := range variants {
		o := c.diskObject(key, v)
		if o == nil || !matchVariant(o, reqHeader) {
			continue
		}
		return c.insertLoaded(o)
	}
	return nil
}

// diskObject reads one variant from the store, ready for the ban check
// (its ban mark set from its creation); nil when it is unreadable, corrupt
// or purged (tombstoned).
func (c *Cache) diskObject(key, variant string) *Object {
	r, body, err := c.opts.Store.Open(key, variant, c.inline())
	if err == nil && body != nil && r.Kind != store.KindNormal {
		// Segments and meta objects are the slicer's, small, and read
		// whole (their deliveries take bodies from memory).
		r.Body, err = io.ReadAll(io.NewSectionReader(body, 0, body.Size()))
		body = nil
	}
	if errors.Is(err, store.ErrCorrupt) {
		c.metrics.Corrupt.Add(1)
		c.log.Warn("dropped corrupt object", "key", key, "err", err)
		return nil
	}
	if err != nil {
		return nil
	}
	o := fromRecord(r, body)
	if c.tombstoned(o) {
		return nil
	}
	o.banMark.Store(c.markAt(o.Created))
	return o
}

// Bodies read from the store larger than inline() stay there, read chunk
// by chunk on delivery (Object.Stored): a disk hit on a 50 MiB object
// loaded it whole, and slow readers of an object evicted and read again
// each held their own copy (issue 13). Smaller bodies come whole into the
// memory tier, for the allocation-free hit path.
const inlineMax = 4 << 20

// inline is the largest body read whole from the store: inlineMax, or a
// sixteenth of the memory tier when that is less.
func (c *Cache) inline() int64 {
	if m := c.opts.MemoryBytes / 16; m > 0 && m < inlineMax {
		return m
	}
	return inlineMax
}

// demote replaces o, just written to the store, by its stored copy when
// its body is larger than inline(): the memory tier keeps the header, the
// body is read from the store by later hits, and o's body is freed once
// the clients already sending it are done. Only if o is still the object
// of its variant in memory.
func (c *Cache) demote(o *Object) {
	if int64(len(o.Body)) <= c.inline() || o.Kind != store.KindNormal {
		return
	}
	d := c.diskObject(o.Key, o.Variant)
	if d == nil || d.Stored == nil || !d.Created.Equal(o.Created) {
		return
	}
	d.lastUsed.Store(o.lastUsed.Load())
	d.banMark.Store(o.banMark.Load())
	d.ReqURL, d.ReqHost = o.ReqURL, o.ReqHost
	sh := c.shard(o.Key)
	sh.mu.Lock()
	vs := sh.m[o.Key]
	i := slices.Index(vs, o)
	if i < 0 || o.dead.Load() {
		sh.mu.Unlock()
		return
	}
	vs[i] = d
	c.account(0, d.size-o.size)
	sh.mu.Unlock()
}

// Forget drops o from the memory tier only: its stored body is gone (an
// eviction from the store, a purge on another path), so the next lookup
// reads the store again or misses. Nothing is deleted from the store.
func (c *Cache) Forget(o *Object) {
	o.dead.Store(true)
	c.removeMemory(o)
}

func (c *Cache) tombstoned(o *Object) bool {
	c.tombMu.Lock()
	defer c.tombMu.Unlock()
	if t, ok := c.tombs[o.Key]; ok && !o.Created.After(t) {
		return true
	}
	for _, tag := range o.Tags {
		if t, ok := c.tagTomb[tag]; ok && !o.Created.After(t) {
			return true
		}
	}
	return false
}

// insertLoaded adds an object read from disk to the memory tier unless an
// object of its variant got there meanwhile (a fetch just stored a newer
// one): then that one is returned and the disk copy forgotten.
func (c *Cache) insertLoaded(o *Object) *Object {
	sh := c.shard(o.Key)
	sh.mu.Lock()
	for _, v := range sh.m[o.Key] {
		if v.Variant == o.Variant {
			sh.mu.Unlock()
			return v
		}
	}
	sh.m[o.Key] = append(sh.m[o.Key], o)
	sh.mu.Unlock()
	c.added(o)
	return o
}

// Insert adds o to the memory tier (replacing the same variant) and queues
// it for the store. o.Finish must have been called.
func (c *Cache) Insert(o *Object) {
	o.lastUsed.Store(time.Now().UnixNano())
	if !o.marked {
		o.banMark.Store(c.bans.Newest())
	}
	c.keep(max(o.KeepUntil.UnixNano(), o.StaleUntil.UnixNano(), o.ErrorUntil.UnixNano()))
	c.insertMemory(o)
	c.metrics.Stored.Add(1)
	if c.opts.Store != nil {
		c.queue(op{put: o})
	}
}

func (c *Cache) insertMemory(o *Object) {
	sh := c.shard(o.Key)
	sh.mu.Lock()
	vs := sh.m[o.Key]
	replaced := false
	for i, v := range vs {
		if v.Variant == o.Variant {
			c.account(-1, -v.size)
			v.dead.Store(true)
			vs[i] = o
			replaced = true
			break
		}
	}
	if !replaced {
		vs = append(vs, o)
	}
	sh.m[o.Key] = vs
	sh.mu.Unlock()
	c.added(o)
}

// added accounts for o, now in the memory tier, and evicts past budget.
func (c *Cache) added(o *Object) {
	c.account(1, o.size)
	if c.opts.MemoryBytes > 0 && c.bytes.Load() > c.opts.MemoryBytes {
		c.evict()
	}
}

func (c *Cache) account(n int, bytes int64) {
	c.objects.Add(int64(n))
	c.bytes.Add(bytes)
	c.metrics.MemObjects.Store(c.objects.Load())
	c.metrics.MemBytes.Store(c.bytes.Load())
}

// evict removes memory objects until the tier is under budget. It samples
// a few entries per round and drops the least recently used of the sample
// (approximate LRU: no list to update on the hit path). Evicted objects stay
// in the store.
func (c *Cache) evict() {
	if !c.evictMu.TryLock() {
		return
	}
	defer c.evictMu.Unlock()
	for c.bytes.Load() > c.opts.MemoryBytes {
		var victim *Object
		sampled := 0
		first := rand.IntN(shards)
		for i := 0; i < shards && sampled < 16; i++ {
			sh := &c.shards[(first+i)%shards]
			sh.mu.RLock()
			n := 0
			for _, vs := range sh.m {
				for _, o := range vs {
					sampled++
					if victim == nil || o.lastUsed.Load() < victim.lastUsed.Load() {
						victim = o
					}
				}
				if n++; n >= 4 {
					break
				}
			}
			sh.mu.RUnlock()
		}
		if victim == nil {
			return
		}
		if c.removeMemory(victim) {
			c.metrics.MemEvictions.Add(1)
		}
	}
}

// removeMemory drops o from the memory tier; true if it was there.
func (c *Cache) removeMemory(o *Object) bool {
	sh := c.shard(o.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	vs := sh.m[o.Key]
	for i, v := range vs {
		if v == o {
			vs = append(vs[:i:i], vs[i+1:]...)
			if len(vs) == 0 {
				delete(sh.m, o.Key)
			} else {
				sh.m[o.Key] = vs
			}
			c.account(-1, -o.size)
			return true
		}
	}
	return false
}

// Remove deletes one object from both tiers (a ban or a failed integrity
// check decided it); a segment meta object takes its segments along.
func (c *Cache) Remove(o *Object) {
	o.dead.Store(true)
	if !c.removeMemory(o) {
		// Already replaced or gone: the object now stored under its key
		// (and its segments) is another one and stays.
		return
	}
	if o.Kind == store.KindSegmentMeta {
		c.dropSegments(o.Key)
	}
	c.tomb(o.Key)
	if c.opts.Store != nil {
		c.queue(op{delObj: o})
	}
}

func (c *Cache) tomb(key string) {
	c.tombMu.Lock()
	c.tombs[key] = time.Now()
	c.tombMu.Unlock()
}

// Purge removes every variant of key from both tiers and waits until the
// store has forgotten them. It returns how many objects were in memory.
func (c *Cache) Purge(key string) int {
	sh := c.shard(key)
	sh.mu.Lock()
	vs := sh.m[key]
	delete(sh.m, key)
	sh.mu.Unlock()
	sliced := false
	for _, o := range vs {
		o.dead.Store(true)
		c.account(-1, -o.size)
		sliced = sliced || o.Kind == store.KindSegmentMeta
	}
	c.tomb(key)
	n := len(vs)
	if sliced {
		c.dropSegments(key)
	}
	if c.opts.Store != nil {
		c.sync(op{delKey: key})
	}
	c.metrics.Purges.Add(int64(n))
	return n
}

// SegmentPrefix starts the keys of the segments of the sliced object key.
func SegmentPrefix(key string) string { return key + "\x00seg:" }

// dropSegments removes the segments of the sliced object key from memory
// (the store deletes them with their meta object: they are its children).
func (c *Cache) dropSegments(key string) {
	prefix := SegmentPrefix(key)
	var gone []string
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, vs := range sh.m {
			if strings.HasPrefix(k, prefix) {
				for _, o := range vs {
					o.dead.Store(true)
					c.account(-1, -o.size)
				}
				delete(sh.m, k)
				gone = append(gone, k)
			}
		}
		sh.mu.Unlock()
	}
	for _, k := range gone {
		c.tomb(k)
	}
}

// PurgeTag removes every object carrying tag (Surrogate-Key / xkey).
func (c *Cache) PurgeTag(tag string) int {
	c.tombMu.Lock()
	c.tagTomb[tag] = time.Now()
	c.tombMu.Unlock()
	var victims []*Object
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for _, vs := range sh.m {
			for _, o := range vs {
				for _, t := range o.Tags {
					if t == tag {
						victims = append(victims, o)
						break
					}
				}
			}
		}
		sh.mu.RUnlock()
	}
	for _, o := range victims {
		o.dead.Store(true)
		c.removeMemory(o)
	}
	n := len(victims)
	if c.opts.Store != nil {
		c.sync(op{delTag: tag})
	}
	c.metrics.Purges.Add(int64(n))
	return n
}

// Ban adds a persisted ban; objects stored before now that match it are
// removed when next looked up (Varnish's lazy bans).
func (c *Cache) Ban(expr string) error {
	b, err := ban.Parse(expr)
	if err != nil {
		return err
	}
	now := time.Now()
	if c.opts.Store != nil {
		if _, err := c.opts.Store.AddBan(b.String(), now); err != nil {
			return err
		}
	}
	e := c.bans.Add(b, now)
	c.banMu.Lock()
	c.banKeep[e.Seq] = c.maxKeep.Load()
	if c.opts.Store != nil && c.maxKeep.Load() == 0 {
		c.banKeep[e.Seq] = math.MaxInt64 // the startup scan has not finished
	}
	c.banMu.Unlock()
	c.metrics.Bans.Add(1)
	return nil
}

// Bans lists the active bans.
func (c *Cache) Bans() []string {
	var out []string
	for _, e := range c.bans.Entries() {
		out = append(out, e.Time.UTC().Format(time.RFC3339)+" "+e.Ban.String())
	}
	return out
}

// BanMark is the mark of an object whose fetch starts now: bans added
// while the origin answers must still apply to the answer.
func (c *Cache) BanMark() uint64 { return c.bans.Newest() }

// markAt is the ban mark of an object read from disk: the newest ban added
// before the object was stored (older bans do not apply to it).
func (c *Cache) markAt(created time.Time) uint64 {
	var mark uint64
	for _, e := range c.bans.Entries() {
		if !e.Time.After(created) {
			mark = e.Seq
		}
	}
	return mark
}

// banned tests o against the bans added since its mark; a match removes it.
// On the hit path, with no new ban, this is two atomic loads.
func (c *Cache) banned(o *Object) bool {
	mark := o.banMark.Load()
	if mark >= c.bans.Newest() {
		return false
	}
	hit, next := c.bans.Check(banView{o}, mark)
	if hit {
		c.metrics.BanKills.Add(1)
		c.Remove(o)
		return true
	}
	o.banMark.Store(next)
	return false
}

type banView struct{ o *Object }

func (v banView) URL() string { return v.o.ReqURL }
func (v banView) ReqHeader(name string) string {
	if http.CanonicalHeaderKey(name) == "Host" {
		return v.o.ReqHost
	}
	return ""
}
func (v banView) Status() int                   { return v.o.Status }
func (v banView) RespHeader(name string) string { return v.o.Header.Get(name) }

func (c *Cache) writer(ctx context.Context) {
	defer c.wg.Done()
	defer close(c.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-c.writes:
			for next := &w; next != nil; {
				next = c.apply(next)
			}
		}
	}
}

// Write-behind bounds. The queue is what a kill -9 can lose (README,
// "Persistence"): at most writeQueue operations wait for the writer, and a
// full queue makes Insert wait (a miss is delayed, never a write lost). A
// batch is one bbolt transaction, which holds its pages on the heap until
// it commits: it is bounded in objects and in body bytes (an object larger
// than batchBytes is committed alone).
const (
	writeQueue = 256
	batchMax   = 64
	batchBytes = 8 << 20
)

// apply performs one write-behind operation. Puts that are already queued
// behind it go into the same transaction (one commit for many objects,
// within batchMax and batchBytes); the first operation that does not fit is
// returned, to be applied next, in order.
func (c *Cache) apply(w *op) *op {
	var st Writer = c.opts.Store
	if w.put != nil {
		var batch []*store.Record
		var objs []*Object
		var next *op
		size := 0
	gather:
		for {
			if !w.put.dead.Load() {
				batch = append(batch, w.put.record())
				objs = append(objs, w.put)
				size += len(w.put.Body)
			}
			if len(batch) >= batchMax || size >= batchBytes {
				break
			}
			// An operation taken from the queue is either added or
			// returned: never dropped.
			select {
			case nw := <-c.writes:
				if nw.put == nil || (len(batch) > 0 && size+len(nw.put.Body) > batchBytes) {
					next = &nw
					break gather
				}
				w = &nw
			default:
				break gather
			}
		}
		if len(batch) > 0 {
			if err := st.PutAll(batch...); err != nil {
				c.log.Warn("store put failed", "objects", len(batch), "err", err)
			} else {
				for _, o := range objs {
					c.demote(o)
				}
			}
		}
		return next
	}
	switch {
	case w.delKey != "":
		if _, err := st.DeleteKey(w.delKey); err != nil {
			c.log.Warn("store purge failed", "key", w.delKey, "err", err)
		}
	case w.delObj != nil:
		if err := st.Delete(w.delObj.Key, w.delObj.Variant); err != nil && !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("store delete failed", "key", w.delObj.Key, "err", err)
		}
	case w.delTag != "":
		if _, err := st.PurgeTag(w.delTag); err != nil {
			c.log.Warn("store tag purge failed", "tag", w.delTag, "err", err)
		}
	}
	if w.done != nil {
		close(w.done)
	}
	return nil
}

// ReserveFill reserves n bytes of the fill budget for a body about to be
// received and stored; false when they do not fit (the caller streams the
// body without storing it). A fetch alone is always let through, so that
// an object larger than the budget but within max_object is still stored.
// Release with ReleaseFill.
func (c *Cache) ReserveFill(n int64) bool {
	budget := c.opts.FillBytes
	if budget <= 0 {
		budget = c.opts.MemoryBytes
	}
	for {
		cur := c.filling.Load()
		if budget > 0 && cur > 0 && cur+n > budget {
			c.metrics.FillsRefused.Add(1)
			return false
		}
		if c.filling.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// ReleaseFill returns bytes taken by ReserveFill.
func (c *Cache) ReleaseFill(n int64) { c.filling.Add(-n) }

// Filling is the number of body bytes reserved by fetches in progress.
func (c *Cache) Filling() int64 { return c.filling.Load() }

// Pending is the number of writes waiting for the writer: what a kill -9
// now would lose (bounded by writeQueue).
func (c *Cache) Pending() int { return len(c.writes) }

// Stats returns memory-tier figures.
func (c *Cache) Stats() (objects, bytes int64) { return c.objects.Load(), c.bytes.Load() }

// sweepTombs forgets tombstones older than before: by then the writer has
// long applied the deletions they guard.
func (c *Cache) sweepTombs(before time.Time) {
	c.tombMu.Lock()
	defer c.tombMu.Unlock()
	for k, t := range c.tombs {
		if t.Before(before) {
			delete(c.tombs, k)
		}
	}
	for k, t := range c.tagTomb {
		if t.Before(before) {
			delete(c.tagTomb, k)
		}
	}
}

var _ Store = (*store.Store)(nil)
