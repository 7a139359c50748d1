package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A browser cannot send an Authorization header by itself, so the status
// page logs in once and then rides on a cookie:
//
//	GET  /?token=TOKEN      (a link) or
//	POST /login token=TOKEN (the login form that GET / shows without one)
//
// set the cookie edgehost_admin and redirect to / (so that the token leaves
// the address bar). The cookie holds its expiry and an HMAC of it keyed by
// the token, not the token: it grants what the token grants, for 12 hours
// (checked here, not only by the browser: a copied cookie stops working
// too), and stops working when the token changes. It is HttpOnly (no script reads it) and SameSite=Strict
// (no other site's page sends it), and it is accepted for GET and HEAD only:
// the page reads, while purges, bans and reloads keep needing the header.
const (
	cookieName   = "edgehost_admin"
	cookieMaxAge = 12 * 60 * 60
	maxLoginBody = 4 << 10
)

// sessionNow is the clock of sessions (tests move it).
var sessionNow = time.Now

// sessionValue is the cookie's value for token, valid until expires:
// EXPIRY.MAC, the expiry in Unix seconds (hex) and the HMAC-SHA256 of it
// keyed by the token.
func sessionValue(token string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 16)
	return exp + "." + sessionMAC(token, exp)
}

func sessionMAC(token, exp string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("edgehost admin session v2\x00" + exp))
	return hex.EncodeToString(mac.Sum(nil))
}

// validSession reports whether v is a cookie value of token that has not
// expired at now.
func validSession(token, v string, now time.Time) bool {
	exp, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(mac), []byte(sessionMAC(token, exp))) != 1 {
		return false
	}
	sec, err := strconv.ParseInt(exp, 16, 64)
	return err == nil && now.Unix() < sec
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
	return validSession(a.o.Token, c.Value, sessionNow())
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
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sessionValue(a.o.Token, sessionNow().Add(cookieMaxAge*time.Second)), Path: "/",
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
