package server

import (
	"fmt"
	"net/http"

	"github.com/edgehost/edgehost/host/config"
)

// compileRoute compiles one route of a config: the features' steps are
// attached and its handler chosen once, not per request.
func (s *Server) compileRoute(rt *runtime, c *config.Route) (*route, error) {
	r := &route{Route: c, backend: rt.backends[c.Backend], obs: s.metrics.RouteObservers(c.Prefix)}
	var synth Handler
	for _, f := range s.features {
		st, err := f.Attach(rt.cfg, c)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", c.Prefix, err)
		}
		synth = cmp(st.Synth, synth)
		r.source = cmp(st.Source, r.source)
		r.fetch = cmp(st.Fetch, r.fetch)
		r.deliver = cmp(st.Deliver, r.deliver)
	}
	switch {
	case c.Respond != nil && c.Respond.File != "":
		if synth == nil {
			synth = unavailable("no file feature serves respond.file")
		}
		r.handle = func(tx *Txn, req *http.Request) error {
			s.metrics.Synth.Add(1)
			return synth.Serve(tx, req)
		}
	case c.Respond != nil:
		r.handle = s.synth
	case c.Static != nil:
		src := r.source
		if src == nil {
			return nil, fmt.Errorf("route %q: no feature serves its static block", c.Prefix)
		}
		r.handle = func(tx *Txn, req *http.Request) error { return s.lookupSource(tx, req, src, false) }
	case c.Compute != nil:
		src := r.source
		if src == nil {
			return nil, fmt.Errorf("route %q: no feature serves its tenant", c.Prefix)
		}
		r.handle = func(tx *Txn, req *http.Request) error { return s.lookupSource(tx, req, src, true) }
	default:
		r.handle = s.forward
	}
	return r, nil
}

// cmp returns the first of a and b that is set.
func cmp[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// unavailable is a handler for a route whose feature is missing: 503.
type unavailable string

func (u unavailable) Serve(*Txn, *http.Request) error {
	return NewStatusError(http.StatusServiceUnavailable, errString(u))
}

// forward is the handler of a backend's route: an unsafe method passes
// and invalidates, a pass route passes, the rest goes through the cache.
func (s *Server) forward(tx *Txn, r *http.Request) error {
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return s.unsafe(tx, r)
	case tx.route.Pass:
		tx.status.Fwd = "bypass"
		s.metrics.Passes.Add(1)
		return s.pass(tx, r)
	}
	return s.lookup(tx, r)
}
