package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

// Live is the sampler behind the status page (issue 17, item 4): once a
// second it reads the host's counters (observe.Metrics) and keeps the
// differences as one point in a ring of Window seconds, so that the page
// can draw req/s, hit ratio, bandwidth and 5xx/s without a time-series
// database. GET /status.json serves the ring.
//
// Latency percentiles come from the request-duration histogram of the
// metrics (edgehost_request_duration_seconds, every route and cache
// status summed): each second the sampler gathers the registry, keeps the
// difference of the cumulative bucket counts since the last second, and
// reads p50/p90/p99 from those buckets with linear interpolation inside a
// bucket, as Prometheus's histogram_quantile does. This costs the request
// path nothing beyond the Observe that /metrics needs anyway, and the
// charts have latency for seconds nobody watched; the sampler pays one
// Gather a second (about 1.6 ms and 400 kB with 20 routes, mostly the Go
// and process collectors: BenchmarkLiveSample). The price is the
// buckets' resolution (observe.LatencyBuckets: a p50 of 30µs reads as a
// point between 0 and 50µs). The first version read the durations from
// the transaction log instead (exact, but a channel send per request while
// a page is open, and only then); it is gone for these reasons.
//
// The recent errors are the transaction log's records with a status >= 500
// or an error, kept in a ring of Errors. The sampler follows the log only
// while somebody has fetched /status.json in the last WatchFor: nobody
// watching means nobody subscribed, and the request path pays nothing for
// the page (a follower costs every request a channel send). On subscribing
// it takes the errors in the log's buffer, so a page opened after the
// errors still sees them.
//
// Lifecycle: NewLive (no side effects) → Start (one goroutine) → Close.
type Live struct {
	o LiveOptions

	mu      sync.Mutex
	ring    []Point // Window points, ring[next] is the oldest once full
	next    int
	full    bool
	prev    counters
	hasPrev bool
	errs    []ErrorRecord // Errors records, newest last
	viewed  time.Time     // last GET /status.json

	// owned by the sampler's goroutine (sample)
	prevBuckets []uint64 // cumulative request-duration bucket counts at the last sample
	prevCount   uint64
	curBuckets  []uint64 // scratch: this sample's
	bounds      []float64

	invMu   sync.Mutex
	invAt   time.Time
	invData map[string]any

	following atomic.Bool // subscribed to the log now

	cancel context.CancelFunc
	done   chan struct{}
}

// LiveOptions configure the sampler. Zero values take the defaults.
type LiveOptions struct {
	Metrics *observe.Metrics
	TxLog   *observe.TxLog
	// Inventory reports what the page shows as tables (backends, plugins,
	// files, tenants), by name; called at most once a second, however many
	// pages poll, with a context that ends after InventoryTimeout.
	Inventory        func(ctx context.Context) map[string]any
	InventoryTimeout time.Duration // default 2s
	Window           int           // points kept, one a second; default 300
	Errors           int           // recent errors kept; default 50
	WatchFor         time.Duration // follow the log this long after a page's last poll; default 30s
}

// Point is one second of the host's activity.
type Point struct {
	T        int64   `json:"t"`         // unix seconds at the end of the second
	Requests int64   `json:"requests"`  // client requests in the second (req/s)
	Hits     int64   `json:"hits"`      // hits, grace hits included
	Misses   int64   `json:"misses"`    //
	Passes   int64   `json:"passes"`    //
	HitRatio float64 `json:"hit_ratio"` // hits / (hits + misses), -1 without lookups
	BytesOut int64   `json:"bytes_out"` // body bytes to clients (bandwidth, bytes/s)
	Errors5x int64   `json:"errors_5xx"`
	Conns    int64   `json:"conns"`   // open client connections at the end of the second
	Samples  int64   `json:"samples"` // client requests in the histogram this second; 0: no percentiles
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
}

// ErrorRecord is one recent error of the transaction log.
type ErrorRecord struct {
	Time   time.Time `json:"time"`
	ID     string    `json:"id"`
	Kind   string    `json:"kind"`
	Method string    `json:"method"`
	URL    string    `json:"url"` // host + target, cut at maxField
	Status int       `json:"status"`
	Error  string    `json:"error,omitempty"` // cut at maxField
	DurMS  float64   `json:"dur_ms"`
}

// maxField bounds the strings of an ErrorRecord: a URL or an error text can
// be as long as a client likes.
const maxField = 300

type counters struct {
	requests, hits, misses, passes, bytesOut, errs5xx int64
}

// NewLive returns a sampler; Start runs it.
func NewLive(o LiveOptions) *Live {
	if o.Window <= 0 {
		o.Window = 300
	}
	if o.Errors <= 0 {
		o.Errors = 50
	}
	if o.WatchFor <= 0 {
		o.WatchFor = 30 * time.Second
	}
	if o.InventoryTimeout <= 0 {
		o.InventoryTimeout = 2 * time.Second
	}
	return &Live{o: o, ring: make([]Point, o.Window)}
}

// Start samples once a second until Close.
func (l *Live) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go l.run(ctx)
}

// Close stops the sampler and waits for it.
func (l *Live) Close() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
}

func (l *Live) run(ctx context.Context) {
	defer close(l.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var (
		txs  <-chan observe.Tx
		stop func()
	)
	defer func() {
		if stop != nil {
			stop()
			l.following.Store(false)
		}
	}()
	l.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case tx := <-txs:
			l.observe(tx)
		case now := <-tick.C:
			l.sample(now)
			watched := l.watched(now)
			switch {
			case watched && stop == nil && l.o.TxLog != nil:
				txs, stop = l.o.TxLog.Subscribe()
				l.following.Store(true)
				// Errors from before the subscription: the log's buffer
				// (the subscription came first, so none falls between;
				// addError drops the ones seen twice).
				for _, tx := range l.o.TxLog.Recent() {
					if isError(tx) {
						l.addError(tx)
					}
				}
			case !watched && stop != nil:
				stop()
				txs, stop = nil, nil
				l.following.Store(false)
			}
		}
	}
}

func (l *Live) watched(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.viewed.IsZero() && now.Sub(l.viewed) < l.o.WatchFor
}

func isError(tx observe.Tx) bool { return tx.Status >= 500 || tx.Error != "" }

// observe takes one record of the log: an error goes into the recent
// errors.
func (l *Live) observe(tx observe.Tx) {
	if isError(tx) {
		l.addError(tx)
	}
}

func (l *Live) addError(tx observe.Tx) {
	id := tx.ID.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.errs {
		if l.errs[i].ID == id {
			return
		}
	}
	if len(l.errs) == l.o.Errors {
		copy(l.errs, l.errs[1:])
		l.errs = l.errs[:len(l.errs)-1]
	}
	l.errs = append(l.errs, ErrorRecord{
		Time: tx.Start.UTC(), ID: id, Kind: tx.Kind, Method: tx.Method,
		URL: cut(tx.Host+tx.URL, maxField), Status: tx.Status, Error: cut(tx.Error, maxField),
		DurMS: ms(tx.Duration),
	})
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sample closes the second that ends at now: the counters' and the
// latency histogram's differences since the last sample become a point.
func (l *Live) sample(now time.Time) {
	m := l.o.Metrics
	c := counters{
		requests: m.Requests.Load(),
		hits:     m.Hits.Load() + m.GraceHits.Load(),
		misses:   m.Misses.Load(),
		passes:   m.Passes.Load(),
		bytesOut: m.BytesOut.Load(),
		errs5xx:  m.StatusByClass[5].Load(),
	}
	p := Point{T: now.Unix(), Conns: m.ActiveConns.Load(), HitRatio: -1}
	l.latency(&p)

	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.hasPrev {
		l.prev, l.hasPrev = c, true
		return
	}
	d := counters{
		requests: c.requests - l.prev.requests, hits: c.hits - l.prev.hits, misses: c.misses - l.prev.misses,
		passes: c.passes - l.prev.passes, bytesOut: c.bytesOut - l.prev.bytesOut, errs5xx: c.errs5xx - l.prev.errs5xx,
	}
	l.prev = c
	p.Requests, p.Hits, p.Misses, p.Passes, p.BytesOut, p.Errors5x = d.requests, d.hits, d.misses, d.passes, d.bytesOut, d.errs5xx
	if d.hits+d.misses > 0 {
		p.HitRatio = float64(d.hits) / float64(d.hits+d.misses)
	}
	l.ring[l.next] = p
	l.next = (l.next + 1) % len(l.ring)
	if l.next == 0 {
		l.full = true
	}
}

// requestDuration is the histogram the percentiles are read from.
const requestDuration = "edgehost_request_duration_seconds"

// latency fills p's percentiles from the requests observed in the
// histogram since the last sample.
func (l *Live) latency(p *Point) {
	fams, err := l.o.Metrics.Registry().Gather()
	if err != nil && fams == nil {
		return
	}
	var count uint64
	cur := l.curBuckets[:0]
	for _, f := range fams {
		if f.GetName() != requestDuration {
			continue
		}
		for _, met := range f.GetMetric() {
			h := met.GetHistogram()
			count += h.GetSampleCount()
			bs := h.GetBucket()
			if len(l.bounds) != len(bs) {
				l.bounds = l.bounds[:0]
				for _, b := range bs {
					l.bounds = append(l.bounds, b.GetUpperBound())
				}
				cur, l.prevBuckets = cur[:0], nil
			}
			for len(cur) < len(bs) {
				cur = append(cur, 0)
			}
			for i, b := range bs {
				cur[i] += b.GetCumulativeCount()
			}
		}
	}
	prev, prevCount := l.prevBuckets, l.prevCount
	l.curBuckets, l.prevBuckets, l.prevCount = prev, cur, count
	// A series dropped (ForgetRoutes after a reload) makes the sums go
	// down: that second has no percentiles.
	if len(prev) != len(cur) || count <= prevCount {
		return
	}
	for i := range cur {
		if cur[i] < prev[i] {
			return
		}
	}
	n := count - prevCount
	p.Samples = int64(n)
	q := func(q float64) float64 { return quantile(l.bounds, cur, prev, n, q) * 1000 }
	p.P50, p.P90, p.P99 = q(0.5), q(0.9), q(0.99)
}

// quantile of the observations between two readings of cumulative bucket
// counts (upper bounds in seconds, n observations between them): the
// bucket where the rank falls, linearly interpolated inside it, as
// Prometheus's histogram_quantile. A rank above the last bound (the +Inf
// bucket) answers the last bound.
func quantile(bounds []float64, cur, prev []uint64, n uint64, q float64) float64 {
	rank := q * float64(n)
	lower, below := 0.0, 0.0
	for i, ub := range bounds {
		c := float64(cur[i] - prev[i])
		if c >= rank {
			if c == below {
				return ub
			}
			return lower + (ub-lower)*(rank-below)/(c-below)
		}
		lower, below = ub, c
	}
	return lower
}

// points returns the ring's points after since (unix seconds), oldest first.
func (l *Live) points(since int64) []Point {
	var all []Point
	if l.full {
		all = append(append(all, l.ring[l.next:]...), l.ring[:l.next]...)
	} else {
		all = append(all, l.ring[:l.next]...)
	}
	i := 0
	for i < len(all) && all[i].T <= since {
		i++
	}
	return all[i:]
}

// LiveStatus is the answer of GET /status.json.
type LiveStatus struct {
	Now      int64  `json:"now"`
	Interval int    `json:"interval_s"`
	Window   int    `json:"window_s"`
	Latency  string `json:"latency_source"`
	Totals   struct {
		Requests int64 `json:"requests"`
		Hits     int64 `json:"hits"`
		Misses   int64 `json:"misses"`
		BytesOut int64 `json:"bytes_out"`
		Errors5x int64 `json:"errors_5xx"`
		Conns    int64 `json:"conns"`
		MemObjs  int64 `json:"memory_objects"`
		MemBytes int64 `json:"memory_bytes"`
	} `json:"totals"`
	Points    []Point        `json:"points"`
	Errors    []ErrorRecord  `json:"errors"`
	Inventory map[string]any `json:"inventory,omitempty"`
}

// ServeHTTP answers GET /status.json[?since=UNIX]: the points after since
// (all of the window without it), the totals, the recent errors and the
// inventory.
func (l *Live) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var since int64
	if s := r.URL.Query().Get("since"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("since=%q: want unix seconds (the t of the last point you have)", s))
			return
		}
		since = v
	}
	now := time.Now()
	st := LiveStatus{Now: now.Unix(), Interval: 1, Window: l.o.Window,
		Latency: "from the buckets of " + requestDuration + " (linear inside a bucket)"}
	m := l.o.Metrics
	t := &st.Totals
	t.Requests, t.Hits, t.Misses, t.BytesOut = m.Requests.Load(), m.Hits.Load()+m.GraceHits.Load(), m.Misses.Load(), m.BytesOut.Load()
	t.Errors5x, t.Conns, t.MemObjs, t.MemBytes = m.StatusByClass[5].Load(), m.ActiveConns.Load(), m.MemObjects.Load(), m.MemBytes.Load()
	l.mu.Lock()
	l.viewed = now
	st.Points = l.points(since)
	st.Errors = append([]ErrorRecord{}, l.errs...)
	l.mu.Unlock()
	st.Inventory = l.inventory(r.Context(), now)
	// Compact, unlike the other endpoints: a full window is 300 points.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(st)
}

// inventory calls Inventory at most once a second; the pages polling in
// the same second share its answer.
func (l *Live) inventory(ctx context.Context, now time.Time) map[string]any {
	if l.o.Inventory == nil {
		return nil
	}
	l.invMu.Lock()
	defer l.invMu.Unlock()
	if l.invData != nil && now.Sub(l.invAt) < time.Second {
		return l.invData
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.InventoryTimeout)
	defer cancel()
	l.invData, l.invAt = l.o.Inventory(ctx), now
	return l.invData
}
