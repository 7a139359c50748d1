// Package cache is edgehost's object cache: a bounded memory tier in front of
// the persistent bbolt store (package store), Vary variants, lazily applied
// bans, purges by URL and tag, and the waiting list that coalesces misses.
//
// The hit path (Lookup on a fresh object in memory) takes one shard read
// lock, does no allocation and never touches bbolt. Objects reach the store
// behind the response, on one writer goroutine that also serialises
// deletions, so a purge can never be overtaken by an older write.
package cache

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/store"
)

// Object is a stored response. Fields are immutable once the object is
// inserted; a revalidation inserts a new Object.
type Object struct {
	Key     string // primary key: host + path?query
	Variant string // from Vary, "" for none
	Status  int
	Header  http.Header // stored response header, hop-by-hop fields removed
	Body    []byte
	// Stored, when set, is the body (Body is nil): a large body read
	// from the store chunk by chunk, never whole onto the heap (issue
	// 13). Its object in the memory tier costs only its header.
	Stored *store.Body

	Created    time.Time // when the response arrived
	InitAge    time.Duration
	Expires    time.Time // fresh until
	StaleUntil time.Time // grace ends
	ErrorUntil time.Time // stale-if-error ends
	KeepUntil  time.Time // kept for revalidation until

	ETag         string
	LastModified time.Time
	Tags         []string
	VaryNames    []string // canonical names listed in Vary
	ReqURL       string   // request target that stored it (for bans)
	ReqHost      string

	Kind   uint8
	Parent string
	Extra  []byte

	// Wire is Header serialized as "Name: value\r\n" lines, for the hit
	// fast path; HasDate says whether it carries a Date field.
	Wire    []byte
	Wire304 []byte // Wire without the fields a 304 leaves out
	HasDate bool

	size      int64
	lastUsed  atomic.Int64  // unix nanoseconds, for eviction
	banMark   atomic.Uint64 // newest ban this object was checked against
	marked    bool          // banMark set at fetch start (MarkBans)
	dead      atomic.Bool   // purged, banned or evicted
	revalling atomic.Bool   // a background revalidation is running
}

// BodyLen is the length of the body, in Body or Stored.
func (o *Object) BodyLen() int64 {
	if o.Stored != nil {
		return o.Stored.Size()
	}
	return int64(len(o.Body))
}

// BodyReader reads the body, from Body or Stored.
func (o *Object) BodyReader() io.ReaderAt {
	if o.Stored != nil {
		return o.Stored
	}
	return bytes.NewReader(o.Body)
}

// MarkBans records the ban mark taken when the object's fetch started
// (Cache.BanMark); call it before Insert.
func (o *Object) MarkBans(mark uint64) {
	o.banMark.Store(mark)
	o.marked = true
}

// Age is the object's current age (RFC 9111 §4.2.3).
func (o *Object) Age(now time.Time) time.Duration {
	return httpcache.CurrentAge(o.InitAge, o.Created, now)
}

// Fresh reports whether o may be served without revalidation.
func (o *Object) Fresh(now time.Time) bool { return now.Before(o.Expires) }

// InGrace reports whether o is stale but may be served while one
// background fetch revalidates it.
func (o *Object) InGrace(now time.Time) bool { return !o.Fresh(now) && now.Before(o.StaleUntil) }

// UsableOnError reports whether o may replace an origin error (stale-if-error
// or grace).
func (o *Object) UsableOnError(now time.Time) bool {
	return now.Before(o.ErrorUntil) || now.Before(o.StaleUntil)
}

// Revalidatable reports whether a conditional request can refresh o.
func (o *Object) Revalidatable() bool { return o.ETag != "" || !o.LastModified.IsZero() }

// TTL is the remaining freshness (negative when stale).
func (o *Object) TTL(now time.Time) time.Duration { return o.Expires.Sub(now) }

// touch records a use for eviction; at most one store a second, so hits
// on a hot object from many cores do not fight over its cache line.
func (o *Object) touch(now time.Time) {
	ns := now.UnixNano()
	if ns-o.lastUsed.Load() > int64(time.Second) {
		o.lastUsed.Store(ns)
	}
}

// TryRevalidate claims the single background revalidation of o.
func (o *Object) TryRevalidate() bool { return o.revalling.CompareAndSwap(false, true) }

// DoneRevalidate releases the claim.
func (o *Object) DoneRevalidate() { o.revalling.Store(false) }

// Finish computes the derived fields; call once before Insert.
func (o *Object) Finish() {
	o.ETag = o.Header.Get("Etag")
	if lm := o.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			o.LastModified = t
		}
	}
	o.VaryNames = o.VaryNames[:0]
	for _, v := range o.Header.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.VaryNames = append(o.VaryNames, http.CanonicalHeaderKey(n))
			}
		}
	}
	o.Tags = o.Tags[:0]
	for _, name := range []string{"Surrogate-Key", "Xkey"} {
		for _, v := range o.Header.Values(name) {
			o.Tags = append(o.Tags, strings.Fields(v)...)
		}
	}
	o.Wire, o.Wire304 = o.Wire[:0], o.Wire304[:0]
	_, o.HasDate = o.Header["Date"]
	for k, vs := range o.Header {
		for _, v := range vs {
			line := append(append(append(append([]byte(nil), k...), ": "...), v...), "\r\n"...)
			o.Wire = append(o.Wire, line...)
			if k != "Content-Length" && k != "Content-Type" {
				o.Wire304 = append(o.Wire304, line...)
			}
		}
	}
	n := int64(len(o.Body)) + int64(len(o.Key)+len(o.Variant)) + 256 + int64(len(o.Wire)+len(o.Wire304))
	for k, vs := range o.Header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	o.size = n
}

// record converts o for the store.
func (o *Object) record() *store.Record {
	return &store.Record{
		Key: o.Key, Variant: o.Variant, Status: o.Status, Header: o.Header, Body: o.Body,
		Created: o.Created.Add(-o.InitAge), Expires: o.Expires, StaleUntil: o.StaleUntil,
		KeepUntil: maxTime(o.KeepUntil, o.ErrorUntil), Tags: o.Tags, Kind: o.Kind, Parent: o.Parent,
		Extra: encodeExtra(o), KeepBody: o.Stored,
	}
}

// fromRecord rebuilds an object read from the store. The initial age is
// folded into Created when stored, so it is zero here.
func fromRecord(r *store.Record, body *store.Body) *Object {
	o := &Object{
		Key: r.Key, Variant: r.Variant, Status: r.Status, Header: r.Header, Body: r.Body, Stored: body,
		Created: r.Created, Expires: r.Expires, StaleUntil: r.StaleUntil, KeepUntil: r.KeepUntil,
		Kind: r.Kind, Parent: r.Parent,
	}
	decodeExtra(o, r.Extra)
	o.Finish()
	o.Tags = r.Tags // as stored: tags the host added, not only the header's
	return o
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
