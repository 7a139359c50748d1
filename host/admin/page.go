package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// The status page is plain HTML, CSS and one small script, embedded in the
// binary: the admin listener is often on a machine without internet, and a
// page that loads nothing from elsewhere can forbid it (Content-Security-
// Policy 'self'). Its charts are drawn on <canvas> by status.js itself: no
// chart library, no build step.
//
//go:embed ui
var uiFiles embed.FS

// pageCSP allows the page's own files and fetches only.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// registerPage adds the status page to mux:
//
//	GET /             the page (token or session cookie, see session.go)
//	GET /status.json  the live data the page polls every second
//	GET /ui/…         the page's CSS and script (no token: nothing secret)
func registerPage(mux *http.ServeMux, live *Live) {
	ui, _ := fs.Sub(uiFiles, "ui")
	assets := http.StripPrefix("/ui/", http.FileServerFS(ui))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, ui, "index.html")
	})
	mux.Handle("GET /status.json", live)
}
