package server

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"time"

	"github.com/edgehost/edgehost/host/backend"
	"github.com/edgehost/edgehost/host/pluginhost"
)

// fail is the one place where an error becomes a response: its status
// (statusFor), the log line, the built-in error page (or an error page
// from the config), the transaction id to find it in the log, and
// Retry-After where retrying makes sense.
func (s *Server) fail(tx *Txn, r *http.Request, err error) {
	status := statusFor(err)
	tx.Error = err.Error()
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client left; nobody to answer
	}
	lvl := s.log.Info
	if status >= 500 {
		lvl = s.log.Warn
	}
	lvl("request failed", "tx", tx.ID, "status", status, "method", r.Method, "host", r.Host, "url", r.RequestURI, "err", err)
	if tx.w.wrote {
		tx.w.abort(nil)
	}
	h := tx.w.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable || status == http.StatusLoopDetected {
		h.Set("Retry-After", "5")
	}
	if tx.status.Fwd == "" && !tx.status.Hit {
		tx.status.Fwd = "miss"
	}
	h.Set("Cache-Status", tx.status.String())
	for _, p := range s.pages {
		if p.ErrorPage(tx, r, status) { // an error_page block (host/files)
			return
		}
	}
	text := http.StatusText(status)
	body := fmt.Sprintf("<!doctype html>\n<title>%d %s</title>\n<h1>%d %s</h1>\n<p>%s</p>\n<hr><p>edgehost · transaction %s · %s</p>\n",
		status, text, status, text, html.EscapeString(publicReason(status)), tx.ID, time.Now().UTC().Format(time.RFC1123))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	tx.w.WriteHeader(status)
	if r.Method != http.MethodHead {
		tx.w.Write([]byte(body))
	}
}

// statusFor maps an error to the client's status: its own (StatusError),
// a plugin's that is not there (503), or the backend's.
func statusFor(err error) int {
	var se *StatusError
	switch {
	case errors.As(err, &se):
		return se.Status
	case errors.Is(err, pluginhost.ErrUnavailable), errors.Is(err, pluginhost.ErrUnknownPlugin), errors.Is(err, pluginhost.ErrNoService):
		return http.StatusServiceUnavailable
	}
	return backend.StatusFor(err)
}

// publicReason is what a client may read; details stay in the log.
func publicReason(status int) string {
	switch status {
	case http.StatusBadGateway:
		return "The origin server could not be reached or sent an invalid response."
	case http.StatusServiceUnavailable:
		return "The service is temporarily unavailable. Please retry shortly."
	case http.StatusGatewayTimeout:
		return "The origin server did not answer in time."
	case http.StatusLoopDetected:
		return "The request loops through edgehost (self-request limit reached)."
	case http.StatusNotFound:
		return "No route serves this address."
	}
	return "The request could not be served."
}
