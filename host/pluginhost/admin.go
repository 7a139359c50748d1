package pluginhost

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Metrics writes the plugins' metrics in the Prometheus text format:
// edgehost_plugin_up, _restarts_total, _reloads_total, _calls_total and
// _call_errors_total, each labelled plugin="NAME".
func (m *Manager) Metrics(w io.Writer) {
	sts := m.Status()
	metric := func(name, typ, help string, value func(Status) uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, st := range sts {
			fmt.Fprintf(w, "%s{plugin=\"%s\"} %d\n", name, labelValue(st.Name), value(st))
		}
	}
	metric("edgehost_plugin_up", "gauge", "Whether the plugin has a running instance.", func(s Status) uint64 {
		if s.State == StateRunning {
			return 1
		}
		return 0
	})
	metric("edgehost_plugin_restarts_total", "counter", "Relaunches after a crash or failed health checks.", func(s Status) uint64 { return s.Restarts })
	metric("edgehost_plugin_reloads_total", "counter", "Swaps to a new instance (reloads).", func(s Status) uint64 { return s.Reloads })
	metric("edgehost_plugin_calls_total", "counter", "Calls made to the plugin.", func(s Status) uint64 { return s.Calls })
	metric("edgehost_plugin_call_errors_total", "counter", "Calls to the plugin that failed.", func(s Status) uint64 { return s.Errors })
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func labelValue(s string) string { return labelEscaper.Replace(s) }
