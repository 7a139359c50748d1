package h1

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// The Date field changes once a second; it is formatted once a second.
type dateCache struct {
	sec  int64
	line []byte // "Date: ...\r\n"
}

var curDate atomic.Pointer[dateCache]

// appendDate appends "Date: <IMF-fixdate>\r\n" for now.
func appendDate(dst []byte) []byte {
	now := time.Now()
	d := curDate.Load()
	if d == nil || d.sec != now.Unix() {
		nd := &dateCache{sec: now.Unix()}
		nd.line = append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
		nd.line = append(nd.line, "\r\n"...)
		curDate.Store(nd)
		d = nd
	}
	return append(dst, d.line...)
}

// AppendDate is appendDate for Fast handlers.
func AppendDate(dst []byte) []byte { return appendDate(dst) }

var statusLines [2][600]string

func statusLine(minor, code int) string {
	if code >= 100 && code < 600 && minor >= 0 && minor <= 1 {
		if s := statusLines[minor][code]; s != "" {
			return s
		}
		s := "HTTP/1." + strconv.Itoa(minor) + " " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
		return s
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " \r\n"
}

// StatusLine returns "HTTP/1.x CODE Reason\r\n".
func StatusLine(minor, code int) string { return statusLine(minor, code) }

func init() {
	for m := 0; m <= 1; m++ {
		for code := 100; code < 600; code++ {
			if t := http.StatusText(code); t != "" {
				statusLines[m][code] = "HTTP/1." + strconv.Itoa(m) + " " + strconv.Itoa(code) + " " + t + "\r\n"
			}
		}
	}
}
