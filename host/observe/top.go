package observe

import (
	"math"
	"slices"
	"time"
)

// Top aggregates transaction records by URL for `edgehost top` (issue 17),
// varnishtop's job: the most requested URLs, the most missed, the slowest.
//
// Counts decay exponentially with the period (varnishtop's -p): a request
// counts 1 when it happens and 1/e one period later, so the view follows
// what the cache does now rather than since it started. Durations are kept
// as the last topSamples of each URL; the slowest are ranked by the
// largest of those within the window.
//
// The table is bounded: at most capacity URLs. When a new URL would pass
// it, the table keeps the half with the highest decayed counts and drops
// the rest (amortized: a sort every capacity/2 new URLs, not a scan per
// record), so a flood of unique URLs costs bounded memory and time.
type Top struct {
	capacity int
	period   time.Duration
	window   time.Duration
	entries  map[string]*topEntry
	latest   time.Time // the newest record's end
	Records  int       // records added
	Evicted  int       // URLs dropped from the table
}

const topSamples = 16

type topEntry struct {
	key            string
	reqs, misses   float64   // decayed to at
	at             time.Time // when reqs and misses were last decayed
	samples        [topSamples]topSample
	nsample, first int
}

type topSample struct {
	end time.Time
	dur time.Duration
}

// TopRow is one line of a Top view.
type TopRow struct {
	URL   string        `json:"url"`
	Count float64       `json:"count"`
	Max   time.Duration `json:"max_ns,omitempty"`
	P50   time.Duration `json:"p50_ns,omitempty"`
	N     int           `json:"n,omitempty"` // samples behind Max and P50
}

// TopView is what Top shows at one time.
type TopView struct {
	Time    time.Time `json:"time"`
	Records int       `json:"records"`
	// MissedRecords is set by the reader: records the server could not
	// send it (it fell behind), not counted.
	MissedRecords int      `json:"missed_records,omitempty"`
	Requested     []TopRow `json:"requested"`
	Missed        []TopRow `json:"missed"`
	Slowest       []TopRow `json:"slowest"`
}

// NewTop returns an empty Top keeping at most capacity URLs (at least 2),
// decaying counts over period and ranking durations within window.
func NewTop(capacity int, period, window time.Duration) *Top {
	return &Top{capacity: max(capacity, 2), period: period, window: window, entries: map[string]*topEntry{}}
}

// Len returns the number of URLs in the table.
func (t *Top) Len() int { return len(t.entries) }

// Add counts tx at the time it ended.
func (t *Top) Add(tx *Tx) {
	end := tx.Start.Add(tx.Duration)
	if end.After(t.latest) {
		t.latest = end
	}
	t.Records++
	key := tx.Host + tx.URL
	e, ok := t.entries[key]
	if !ok {
		if len(t.entries) >= t.capacity {
			t.shrink(end)
		}
		e = &topEntry{key: key, at: end}
		t.entries[key] = e
	}
	e.decay(end, t.period)
	e.reqs++
	if IsMiss(tx) {
		e.misses++
	}
	i := (e.first + e.nsample) % topSamples
	if e.nsample == topSamples {
		e.first = (e.first + 1) % topSamples
	} else {
		e.nsample++
	}
	e.samples[i] = topSample{end: end, dur: tx.Duration}
}

// decay brings the counts to now; records arriving out of order (a
// replayed ring, a late subrequest) are counted as of the newest time.
func (e *topEntry) decay(now time.Time, period time.Duration) {
	dt := now.Sub(e.at)
	if dt <= 0 {
		return
	}
	f := math.Exp(-float64(dt) / float64(period))
	e.reqs *= f
	e.misses *= f
	e.at = now
}

// shrink keeps the capacity/2 URLs with the highest decayed counts.
func (t *Top) shrink(now time.Time) {
	all := make([]*topEntry, 0, len(t.entries))
	for _, e := range t.entries {
		e.decay(now, t.period)
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b *topEntry) int { return cmpDesc(a.reqs, b.reqs, a.key, b.key) })
	for _, e := range all[t.capacity/2:] {
		delete(t.entries, e.key)
		t.Evicted++
	}
}

// View returns the rows top rows of each ranking as of now (or of the
// newest record, when that is later: a clock behind the server's).
func (t *Top) View(now time.Time, rows int) TopView {
	if t.latest.After(now) {
		now = t.latest
	}
	v := TopView{Time: now, Records: t.Records}
	var durs []time.Duration
	for _, e := range t.entries {
		f := 1.0
		if dt := now.Sub(e.at); dt > 0 {
			f = math.Exp(-float64(dt) / float64(t.period))
		}
		v.Requested = append(v.Requested, TopRow{URL: e.key, Count: e.reqs * f})
		if e.misses*f >= 0.005 {
			v.Missed = append(v.Missed, TopRow{URL: e.key, Count: e.misses * f})
		}
		durs = durs[:0]
		for i := 0; i < e.nsample; i++ {
			if s := e.samples[(e.first+i)%topSamples]; now.Sub(s.end) <= t.window {
				durs = append(durs, s.dur)
			}
		}
		if len(durs) > 0 {
			slices.Sort(durs)
			v.Slowest = append(v.Slowest, TopRow{URL: e.key, Count: e.reqs * f, Max: durs[len(durs)-1], P50: durs[(len(durs)-1)/2], N: len(durs)})
		}
	}
	byCount := func(a, b TopRow) int { return cmpDesc(a.Count, b.Count, a.URL, b.URL) }
	slices.SortFunc(v.Requested, byCount)
	slices.SortFunc(v.Missed, byCount)
	slices.SortFunc(v.Slowest, func(a, b TopRow) int {
		return cmpDesc(float64(a.Max), float64(b.Max), a.URL, b.URL)
	})
	v.Requested = v.Requested[:min(rows, len(v.Requested))]
	v.Missed = v.Missed[:min(rows, len(v.Missed))]
	v.Slowest = v.Slowest[:min(rows, len(v.Slowest))]
	return v
}

// cmpDesc orders by x descending, then by key for a stable view.
func cmpDesc(x, y float64, kx, ky string) int {
	switch {
	case x > y:
		return -1
	case x < y:
		return 1
	case kx < ky:
		return -1
	case kx > ky:
		return 1
	}
	return 0
}
