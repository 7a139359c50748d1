package server

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/cache"
	"github.com/edgehost/edgehost/host/h1"
	"github.com/edgehost/edgehost/host/httpcache"
	"github.com/edgehost/edgehost/host/observe"
)

// fastHit answers a fresh cache hit straight from memory: GET or HEAD on a
// plain cache route, no conditional or range fields, an object without
// Vary. Anything else returns false and takes the full state machine, which
// gives the same answer more slowly. No plugin call, no bbolt access, and
// no allocation but the transaction log's record.
func (s *Server) fastHit(r *h1.Request, w *h1.Writer) bool {
	isHead := false
	switch string(r.Method) {
	case http.MethodGet:
	case http.MethodHead:
		isHead = true
	default:
		return false
	}
	if len(r.Target) == 0 || r.Target[0] != '/' {
		return false
	}
	inm, ok := FastConditional(r)
	if !ok {
		return false
	}
	var kb [512]byte
	key := appendLower(kb[:0], r.Host)
	host := stripPort(key)
	key = append(key, r.Target...)
	rt := s.rt.Load()
	fr := fastRoute(rt.routes, host, r.Path)
	if fr == nil {
		if s.fast != nil { // a reader-backed respond route (host/files)
			start := time.Now()
			if !s.fast.ServeFast(rt.cfg, r, w, isHead) {
				return false
			}
			// The feature served the first route that matches, as
			// match would have chosen it (ServeFast takes no route
			// with a condition).
			if m := firstRoute(rt.routes, host, r.Path); m != nil {
				m.obs.Observe(observe.CacheSynth, time.Since(start).Seconds())
			}
			return true
		}
		return false
	}
	now := time.Now()
	o := s.cache.LookupFast(key, now)
	if o == nil || !o.Fresh(now) || o.Kind != 0 || o.Stored != nil {
		return false
	}
	cs := httpcache.CacheStatus{Hit: true, TTL: o.TTL(now)}
	status, wire, body := o.Status, o.Wire, o.Body
	if inm != nil {
		if o.Status != http.StatusOK {
			return false
		}
		if httpcache.NoneMatch(inm, o.ETag) {
			// RFC 9110 §13.1.2: a weak match of any listed tag is a 304.
			status, wire, body = http.StatusNotModified, o.Wire304, nil
		}
	}
	head := w.Head()
	head = append(head, h1.StatusLine(r.Minor, status)...)
	head = append(head, wire...)
	if !o.HasDate {
		head = h1.AppendDate(head)
	}
	head = append(head, "Age: "...)
	head = httpcache.AppendAge(head, o.Age(now))
	head = append(head, "\r\nCache-Status: "...)
	head = cs.AppendTo(head)
	head = append(head, "\r\n"...)
	body = SendFast(s.metrics, r, w, head, body, isHead, status)
	s.metrics.Hits.Add(1)
	// The record reuses strings that exist already: the object's request
	// URL is this request's and its key starts with this request's Host,
	// port included, lowercased (same cache key, cacheKey).
	id := observe.NewID()
	method := http.MethodGet
	if isHead {
		method = http.MethodHead
	}
	d := time.Since(now)
	s.txlog.Publish(observe.Tx{ID: id, Root: id, Kind: "client", Start: now, Duration: d,
		Method: method, Host: keyHost(o), URL: o.ReqURL, Status: status,
		Cache: "hit", Bytes: int64(len(body)), Remote: r.RemoteAddr})
	fr.obs.Observe(observe.CacheHit, d.Seconds())
	return true
}

// FastConditional reads the fields of a request that the fast path may
// answer: one If-None-Match (returned, nil when absent) and no other
// conditional or range field; ok is false otherwise.
func FastConditional(r *h1.Request) (inm []byte, ok bool) {
	for i := 0; i < r.NumFields(); i++ {
		name, value := r.Field(i)
		if len(name) >= 3 && (name[0]|0x20) == 'i' && (name[1]|0x20) == 'f' && name[2] == '-' {
			// If-None-Match alone is common (browsers revalidating) and
			// cheap; If-Modified-Since, If-Match, If-Range… take the
			// slow path.
			if !h1.EqualFold(name, "if-none-match") || inm != nil {
				return nil, false
			}
			inm = value
		}
		if h1.EqualFold(name, "range") {
			return nil, false
		}
	}
	return inm, true
}

// fastRoute is the route of a request when it is a plain cache route that
// needs no condition evaluated; nil otherwise.
func fastRoute(routes []*route, host, path []byte) *route {
	rt := firstRoute(routes, host, path)
	if rt == nil || rt.When != nil || rt.Respond != nil || rt.Pass || rt.deliver != nil || (rt.Backend == "" && rt.Static == nil) {
		return nil
	}
	return rt
}

// firstRoute is the first route whose prefix and hosts take the request.
func firstRoute(routes []*route, host, path []byte) *route {
	for _, rt := range routes {
		if bytes.HasPrefix(path, []byte(rt.Prefix)) && hostMatchBytes(rt.Hosts, host) {
			return rt
		}
	}
	return nil
}

// HostMatchBytes says whether a route's hosts take host (lowercased, no
// port).
func HostMatchBytes(hosts []string, host []byte) bool { return hostMatchBytes(hosts, host) }

func hostMatchBytes(hosts []string, host []byte) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		if string(host) == h || h == "*" || (len(h) > 1 && h[0] == '*' && bytes.HasSuffix(host, []byte(h[1:]))) {
			return true
		}
	}
	return false
}

// AppendHost appends the host of a Host field to dst as routes match it:
// lowercased, without its port. (A feature's fast path builds it in a
// buffer of its own: the server's would escape through the interface.)
func AppendHost(dst, host []byte) []byte { return stripPort(appendLower(dst, host)) }

func stripPort(host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		return host[:i]
	}
	return host
}

func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// SendFast ends a fast-path head (persistence, blank line), sends it with
// body (none for HEAD) and counts the response; it returns the body sent.
func SendFast(m *observe.Metrics, r *h1.Request, w *h1.Writer, head, body []byte, isHead bool, status int) []byte {
	if !r.KeepAlive && r.Minor == 1 {
		head = append(head, "Connection: close\r\n"...)
	} else if r.KeepAlive && r.Minor == 0 {
		head = append(head, "Connection: keep-alive\r\n"...)
	}
	head = append(head, "\r\n"...)
	if isHead {
		body = nil
	}
	w.WriteResponse(head, body)
	m.Requests.Add(1)
	m.Status(status)
	m.BytesOut.Add(int64(len(body)))
	return body
}

// keyHost is the Host a cache key was made of (host and port, lowercased,
// as cacheKey writes it), without allocating; the object's ReqHost (no
// port) when the key is not of that form.
func keyHost(o *cache.Object) string {
	if strings.HasSuffix(o.Key, o.ReqURL) {
		return o.Key[:len(o.Key)-len(o.ReqURL)]
	}
	return o.ReqHost
}
