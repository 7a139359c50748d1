package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
)

// A browser cannot send an Authorization header by itself, so the status
// page logs in once and then rides on a cookie:
//
//	GET  /?token=TOKEN      (a link) or
//	POST /login token=TOKEN (the login form that GET / shows without one)
//
// set the cookie edgehost_admin and redirect to / (so that the token leaves
// the address bar). The cookie holds an HMAC of the token, not the token:
// it grants what the token grants, for 12 hours, and stops working when the
// token changes. It is HttpOnly (no script reads it) and SameSite=Strict
// (no other site's page sends it), and it is accepted for GET and HEAD only:
// the page reads, while purges, bans and reloads keep needing the header.
const (
	cookieName   = "edgehost_admin"
	cookieMaxAge = 12 * 60 * 60
	maxLoginBody = 4 << 10
)

// sessionValue is the cookie's value for token.
func sessionValue(token string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("edgehost admin session v1"))
	return hex.EncodeToString(mac.Sum(nil))
}

// cookieAuth reports whether r carries a valid session cookie; only reads
// may use one.
func (a *api) cookieAuth(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	c, err := r.Cookie(cookieName)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(sessionValue(a.o.Token))) == 1
}

// login handles the two ways in (GET /?token=, POST /login); ok is false
// when r is neither and the usual check applies.
func (a *api) login(w http.ResponseWriter, r *http.Request) (ok bool) {
	var tok string
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet && r.URL.Query().Has("token"):
		tok = r.URL.Query().Get("token")
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
		if err := r.ParseForm(); err != nil {
			httpError(w, http.StatusBadRequest, "login form: "+err.Error())
			return true
		}
		tok = r.PostForm.Get("token")
	default:
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(a.o.Token)) != 1 {
		loginPage(w, http.StatusUnauthorized, "Wrong token.")
		return true
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sessionValue(a.o.Token), Path: "/",
		MaxAge: cookieMaxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return true
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgehost status: log in</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/status.css"></head>
<body><main class="login"><h1>edgehost</h1>
<form method="post" action="/login"><label for="token">Admin token (admin.token)</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Open the status page</button></form>
{{if .}}<p class="err">{{.}}</p>{{end}}</main></body></html>
`))

// loginPage answers the login form with code.
func loginPage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	loginTmpl.Execute(w, msg)
}

// wantsPage reports whether an unauthenticated r should see the login
// form rather than the JSON error that tools get.
func wantsPage(r *http.Request) bool {
	return r.URL.Path == "/" && r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}
