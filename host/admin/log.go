package admin

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

// afterSubscribe is a test hook: it runs between the follower's
// subscription and its reading of the ring.
var afterSubscribe = func() {}

// log streams the transaction log as JSON lines: the buffered records, then
// (follow=1) new ones as they happen. The selection is made here, not by
// the client, so that following a busy server with a narrow query does not
// ship every record (issue 17):
//
//	q=QUERY      only what matches (observe.ParseQuery); 400 with the
//	             position of the mistake when it does not parse
//	group=1      whole requests, each followed by its subrequests; a query
//	             selects the groups in which any record matches
//	since=T      only records that started at or after T (5m: five minutes
//	             ago; or an RFC 3339 time)
//	n=N          end the response after N groups (or records)
//	missed=1     when following, a line {"missed":N} after the records the
//	             follower missed, N of them, because it fell behind
func (a *api) log(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	var sel observe.Selection
	var err error
	if sel.Query, err = observe.ParseQuery(qv.Get("q")); err != nil {
		http.Error(w, "q: "+err.Error(), http.StatusBadRequest)
		return
	}
	if sel.Since, err = observe.ParseSince(qv.Get("since"), time.Now()); err != nil {
		http.Error(w, "since: "+err.Error(), http.StatusBadRequest)
		return
	}
	if s := qv.Get("n"); s != "" {
		if sel.Limit, err = strconv.Atoi(s); err != nil || sel.Limit < 0 {
			http.Error(w, "n: expected a count of 0 or more, found "+strconv.Quote(s), http.StatusBadRequest)
			return
		}
	}
	sel.Group = qv.Get("group") == "1"
	follow := qv.Get("follow") == "1"

	w.Header().Set("Content-Type", "application/x-ndjson")
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	sl := observe.NewSelector(sel)
	emit := func(txs []observe.Tx) {
		for i := range txs {
			w.Write(txs[i].MarshalLine())
		}
	}
	var ch <-chan observe.Tx
	var missed *atomic.Uint64
	if follow {
		c, m, stop := a.o.TxLog.Follow()
		defer stop()
		ch, missed = c, m
		afterSubscribe()
	}
	tellMissed := qv.Get("missed") == "1"
	var told uint64
	tell := func() {
		if m := missed.Load(); tellMissed && m > told {
			fmt.Fprintf(w, "{\"missed\":%d}\n", m-told)
			told = m
		}
	}
	recent := a.o.TxLog.Recent()
	for _, tx := range recent {
		if !sl.Add(tx, emit) {
			return
		}
	}
	if !follow {
		sl.Flush(emit)
		return
	}
	flush()
	// The subscription started before Recent was read: records published
	// in between are in both. They are among the newest of recent and
	// among the first FollowBuffer of the channel; skip those once.
	seen := map[observe.TxID]bool{}
	for _, tx := range recent[max(0, len(recent)-observe.FollowBuffer):] {
		seen[tx.ID] = true
	}
	unchecked := observe.FollowBuffer
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case tx := <-ch:
			if unchecked > 0 && len(seen) > 0 {
				unchecked--
				if seen[tx.ID] {
					delete(seen, tx.ID)
					continue
				}
			}
			tell()
			more := sl.Add(tx, emit)
			flush()
			if !more {
				return
			}
		case <-tick.C:
			// keep-alive blank line so proxies do not drop the stream
			tell()
			w.Write([]byte("\n"))
			flush()
		}
	}
}
