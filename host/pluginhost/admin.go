package pluginhost

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Status is what `edgehost plugins` and GET /plugins show of one plugin.
type Status struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind,omitempty"`    // the plugin's own name (Info)
	Version   string    `json:"version,omitempty"` // of the running instance
	Digest    string    `json:"sha256,omitempty"`  // of the running binary
	Path      string    `json:"path,omitempty"`    // the configured binary
	PID       int       `json:"pid,omitempty"`
	State     string    `json:"state"`
	Since     time.Time `json:"since,omitzero"` // the running instance's start
	Services  []string  `json:"services,omitempty"`
	Restarts  uint64    `json:"restarts"`
	Reloads   uint64    `json:"reloads"`
	Calls     uint64    `json:"calls"`
	Errors    uint64    `json:"errors"`
	LastError string    `json:"last_error,omitempty"`
}

// Status reports every plugin, by name.
func (m *Manager) Status() []Status {
	var out []Status
	for _, name := range m.names() {
		if p, err := m.get(name); err == nil {
			out = append(out, p.status())
		}
	}
	return out
}

func (p *managed) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{
		Name:      p.name,
		Path:      p.bin.source,
		State:     p.state,
		Restarts:  p.restarts.Load(),
		Reloads:   p.reloads.Load(),
		Calls:     p.calls.Load(),
		Errors:    p.errs.Load(),
		LastError: p.lastErr,
	}
	if i := p.cur; i != nil {
		st.Kind, st.Version, st.Services = i.info.Name, i.info.Version, i.info.Services
		st.Digest, st.PID, st.Since = i.bin.digest, i.pid, i.started
	}
	return st
}

// AdminHandler serves the plugin part of the admin API:
//
//	GET  /plugins              every plugin's Status, as JSON
//	POST /plugins/NAME/reload  swap NAME for its current binary; needs
//	                           "Authorization: Bearer TOKEN"
//
// A reload answers 200 with the new Status, 404 for an unknown plugin, 409
// when the new binary was refused (the old one serves on), 401 without the
// token, 403 when no token is configured (reloads are then disabled).
func (m *Manager) AdminHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /plugins", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, m.Status())
	})
	mux.HandleFunc("POST /plugins/{name}/reload", func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "admin.token is not set in the config: plugin reload is disabled"})
			return
		}
		if !authorized(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgehost"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token"})
			return
		}
		name := r.PathValue("name")
		err := m.Reload(r.Context(), name)
		switch {
		case errors.Is(err, ErrUnknownPlugin):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		default:
			p, err := m.get(name)
			if err != nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, p.status())
		}
	})
	return mux
}

func authorized(r *http.Request, token string) bool {
	if token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
