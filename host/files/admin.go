package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/edgehost/edgehost/host/config"
)

// FileStatus is a reader as GET /files and a check show it.
type FileStatus struct {
	Name        string    `json:"name"`
	Path        string    `json:"path,omitempty"`
	Plugin      string    `json:"plugin,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Size        int64     `json:"size"`
	Mtime       time.Time `json:"mtime,omitzero"`
	ID          string    `json:"id,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Error       bool      `json:"error"`
	ErrCode     string    `json:"error_code,omitempty"`
	ErrMsg      string    `json:"errmsg,omitempty"`
	Deleted     bool      `json:"deleted"`
	Serving     bool      `json:"serving"`
	Why         string    `json:"why,omitempty"`
	LoadedID    string    `json:"loaded_id,omitempty"`
	LoadedBytes int       `json:"loaded_bytes"`
	LoadedAt    time.Time `json:"loaded_at,omitzero"`
	ETag        string    `json:"etag,omitempty"`
}

// Files reports every reader of the current configuration.
func (f *Files) Files() []FileStatus {
	cfg := f.config()
	var out []FileStatus
	for name := range cfg.Files {
		out = append(out, f.fileStatus(cfg, name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *Files) fileStatus(cfg *config.Config, name string) FileStatus {
	fs := FileStatus{Name: name}
	if fc := cfg.Files[name]; fc != nil {
		fs.Path, fs.Plugin, fs.ContentType = fc.Path, fc.Plugin, fc.ContentType
	}
	e := f.get(name)
	fs.Serving, fs.Why = e.usable()
	if e == nil {
		fs.Error = true
		return fs
	}
	st := e.state
	fs.Size, fs.ID, fs.SHA256, fs.Deleted = st.GetSize(), st.GetIdDigest(), st.GetSha256(), st.GetDeleted()
	fs.Error, fs.ErrCode, fs.ErrMsg = st.GetError() != "", st.GetError(), st.GetMessage()
	if st.GetMtimeUnixNano() != 0 {
		fs.Mtime = time.Unix(0, st.GetMtimeUnixNano()).UTC()
	}
	if e.loaded {
		fs.LoadedID, fs.LoadedBytes, fs.LoadedAt, fs.ETag = e.bodyID, len(e.body), e.loadedAt, e.etag
	}
	return fs
}

// FileCounts reports how many readers the current configuration has and
// how many of them cannot serve (for metrics).
func (f *Files) FileCounts() (readers, failing int) {
	for name := range f.config().Files {
		readers++
		if ok, _ := f.get(name).usable(); !ok {
			failing++
		}
	}
	return readers, failing
}

// ErrUnknownFile is returned by CheckFile for a name that no file block
// declares.
var ErrUnknownFile = errors.New("unknown file")

// CheckFile runs a synchronous check of a reader through its plugin,
// applies the state it returns (loading a new version) and reports it.
func (f *Files) CheckFile(ctx context.Context, name string) (FileStatus, error) {
	cfg := f.config()
	fc := cfg.Files[name]
	if fc == nil {
		return FileStatus{}, fmt.Errorf("%w %q", ErrUnknownFile, name)
	}
	if f.plugins == nil {
		return FileStatus{}, errors.New("no plugin manager")
	}
	h, err := f.plugins.File(fc.Plugin)
	if err != nil {
		return FileStatus{}, err
	}
	st, err := h.Check(ctx, name)
	if err != nil {
		return FileStatus{}, err
	}
	f.updateReader(h, st)
	return f.fileStatus(cfg, name), nil
}

// AdminHandlers are the admin API's file endpoints, for
// admin.Options.Extra (which puts them behind the token):
//
//	GET  /files              every reader's state (FileStatus), as JSON
//	GET  /files/NAME         one reader's state
//	GET  /files/NAME/contents  the contents the host serves (409 when
//	                         none are loaded)
//	POST /files/NAME/check   check NAME now; 200 with its new state, 404
//	                         for an unknown reader, 503 when its plugin is
//	                         down
func (f *Files) AdminHandlers() map[string]http.Handler {
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	}
	return map[string]http.Handler{
		"GET /files": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, f.Files())
		}),
		"GET /files/{name}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cfg := f.config()
			name := r.PathValue("name")
			if cfg.Files[name] == nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("%v %q", ErrUnknownFile, name)})
				return
			}
			writeJSON(w, http.StatusOK, f.fileStatus(cfg, name))
		}),
		"GET /files/{name}/contents": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cfg := f.config()
			name := r.PathValue("name")
			fc, e := cfg.Files[name], f.get(name)
			switch {
			case fc == nil:
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("%v %q", ErrUnknownFile, name)})
			case e == nil || !e.loaded:
				writeJSON(w, http.StatusConflict, map[string]string{"error": "no contents loaded"})
			default:
				w.Header().Set("Content-Type", fc.ContentType)
				w.Header().Set("Etag", e.etag)
				w.Header().Set("Content-Length", strconv.Itoa(len(e.body)))
				w.Write(e.body)
			}
		}),
		"POST /files/{name}/check": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fs, err := f.CheckFile(r.Context(), r.PathValue("name"))
			switch {
			case errors.Is(err, ErrUnknownFile):
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case err != nil:
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			default:
				writeJSON(w, http.StatusOK, fs)
			}
		}),
	}
}

// config is the configuration of the last Watch (an empty one before).
func (f *Files) config() *config.Config {
	if c := f.cfg.Load(); c != nil {
		return c
	}
	return &config.Config{}
}
