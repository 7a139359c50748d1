package demoorigin

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Stats is what the origin counted since New or the last ResetStats.
// Control endpoints (/healthz, /stats, /admin/...) are not counted.
type Stats struct {
	// Requests is the number of requests to the counted endpoints.
	Requests int64 `json:"requests"`
	// RequestsByPrefix counts requests by first path segment ("/bytes",
	// "/big", ..., "/" for the index, "other" for unknown paths); only
	// non-zero entries are present.
	RequestsByPrefix map[string]int64 `json:"requests_by_prefix"`
	// BytesSent is the number of body bytes actually written to clients
	// (not what Content-Length promised: /truncate and aborted transfers
	// count what went out).
	BytesSent int64 `json:"bytes_sent"`
	// BytesByPrefix splits BytesSent like RequestsByPrefix.
	BytesByPrefix map[string]int64 `json:"bytes_by_prefix"`
	// NotModified is the number of 304 responses.
	NotModified int64 `json:"not_modified"`
	// BigVersion is the current version of the /big objects (not reset).
	BigVersion int `json:"big_version"`
}

// Stats returns a snapshot of the counters.
func (o *Origin) Stats() Stats {
	s := Stats{
		Requests:         o.requests.Load(),
		RequestsByPrefix: make(map[string]int64),
		BytesByPrefix:    make(map[string]int64),
		NotModified:      o.notModified.Load(),
		BigVersion:       o.Version(),
	}
	for ep := endpoint(0); ep < firstControl; ep++ {
		if n := o.perEP[ep].requests.Load(); n != 0 {
			s.RequestsByPrefix[endpointNames[ep]] = n
		}
		if n := o.perEP[ep].bytes.Load(); n != 0 {
			s.BytesByPrefix[endpointNames[ep]] = n
			s.BytesSent += n
		}
	}
	return s
}

// ResetStats zeroes every counter, /counter's included; the /big version and
// X-Origin-Request's sequence go on.
func (o *Origin) ResetStats() {
	o.requests.Store(0)
	o.notModified.Store(0)
	for i := range o.perEP {
		o.perEP[i].requests.Store(0)
		o.perEP[i].bytes.Store(0)
	}
	o.counters.Clear()
}

// serveStats answers GET /stats with the Stats as JSON.
func (o *Origin) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		o.methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	body, err := json.MarshalIndent(o.Stats(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	h := w.Header()
	h["Content-Type"] = hvJSON
	h["Cache-Control"] = hvNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// serveAdmin answers POST /admin/version (bump the /big version, body: the
// new one), GET /admin/version, and POST /admin/reset (ResetStats).
func (o *Origin) serveAdmin(w http.ResponseWriter, r *http.Request, rest string) {
	w.Header()["Cache-Control"] = hvNoStore
	switch rest {
	case "version":
		switch r.Method {
		case http.MethodPost:
			o.text(w, r, epAdmin, http.StatusOK, strconv.Itoa(o.BumpVersion())+"\n")
		case http.MethodGet, http.MethodHead:
			o.text(w, r, epAdmin, http.StatusOK, strconv.Itoa(o.Version())+"\n")
		default:
			o.methodNotAllowed(w, r, "GET, HEAD, POST")
		}
	case "reset":
		if r.Method != http.MethodPost {
			o.methodNotAllowed(w, r, "POST")
			return
		}
		o.ResetStats()
		o.text(w, r, epAdmin, http.StatusOK, "reset\n")
	default:
		o.notFound(w, epAdmin)
	}
}

func (o *Origin) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header()["Allow"] = []string{allow}
	w.Header().Del("Cache-Control")
	o.text(w, r, epAdmin, http.StatusMethodNotAllowed, "405 method not allowed\n")
}
