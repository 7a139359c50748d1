package httpcache

import (
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) strictly: exactly one
// of the three forms the grammar allows, nothing else.
//
//	IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT   ; Sun, 06 Nov 1994 08:49:37 GMT
//	rfc850-date  = day-name-l "," SP date2 SP time-of-day SP GMT ; Sunday, 06-Nov-94 08:49:37 GMT
//	asctime-date = day-name SP date3 SP time-of-day SP year      ; Sun Nov  6 08:49:37 1994
//
// The field value may carry leading and trailing whitespace (RFC 9110
// §5.5), nothing more: net/http.ParseTime, which this replaces, also
// accepted runs of spaces and a one-digit hour, so that a malformed Expires
// gave a lifetime where RFC 9111 §5.3 says "already expired". HTTP-date is
// case-sensitive. The day name is not checked against the date (a
// recipient has no use for it).
func parseHTTPDate(s string) (time.Time, bool) {
	s = trimOWS(s)
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	if len(s) == 24 {
		return parseASCTime(s)
	}
	return parseRFC850(s, time.Now().Year())
}

func parseIMFFixdate(s string) (time.Time, bool) {
	// 0123456789012345678901234567 8
	// Sun, 06 Nov 1994 08:49:37 GMT
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || s[25:] != " GMT" || !dayName(s[:3]) {
		return time.Time{}, false
	}
	month, ok := monthName(s[8:11])
	if !ok {
		return time.Time{}, false
	}
	day, ok1 := digits(s[5:7])
	year, ok2 := digits(s[12:16])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	return dateTime(year, month, day, s[17:25])
}

// parseASCTime parses C's asctime() format: "Sun Nov  6 08:49:37 1994"
// (a one-digit day is padded with a space, date3 = month SP (2DIGIT / (SP
// DIGIT))).
func parseASCTime(s string) (time.Time, bool) {
	// 012345678901234567890123
	// Sun Nov  6 08:49:37 1994
	if len(s) != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' || !dayName(s[:3]) {
		return time.Time{}, false
	}
	month, ok := monthName(s[4:7])
	if !ok {
		return time.Time{}, false
	}
	d := s[8:10]
	if d[0] == ' ' {
		d = d[1:]
	}
	day, ok1 := digits(d)
	year, ok2 := digits(s[20:24])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	return dateTime(year, month, day, s[11:19])
}

// parseRFC850 parses the obsolete RFC 850 form, "Sunday, 06-Nov-94
// 08:49:37 GMT". Its two-digit year is read as RFC 9110 §5.6.7 requires: a
// year more than 50 years after thisYear is the most recent past year with
// those two digits.
func parseRFC850(s string, thisYear int) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(s) && i < 10; i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 {
		return time.Time{}, false
	}
	switch s[:comma] {
	case "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday":
	default:
		return time.Time{}, false
	}
	// , 06-Nov-94 08:49:37 GMT
	// 0123456789012345678901234
	r := s[comma:]
	if len(r) != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20:] != " GMT" {
		return time.Time{}, false
	}
	month, ok := monthName(r[5:8])
	if !ok {
		return time.Time{}, false
	}
	day, ok1 := digits(r[2:4])
	yy, ok2 := digits(r[9:11])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	// The year with those two digits in (thisYear-50, thisYear+50].
	year := thisYear/100*100 + yy
	switch {
	case year > thisYear+50:
		year -= 100
	case year <= thisYear-50:
		year += 100
	}
	return dateTime(year, month, day, r[12:20])
}

// dateTime checks time-of-day ("08:49:37", two digits each, RFC 9110
// §5.6.7) and the day of the month, and builds the time in UTC.
func dateTime(year int, month time.Month, day int, tod string) (time.Time, bool) {
	if len(tod) != 8 || tod[2] != ':' || tod[5] != ':' {
		return time.Time{}, false
	}
	hour, ok3 := digits(tod[0:2])
	minute, ok4 := digits(tod[3:5])
	sec, ok5 := digits(tod[6:8])
	if !ok3 || !ok4 || !ok5 || day < 1 || hour > 23 || minute > 59 || sec > 60 {
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

func dayName(s string) bool {
	switch s {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
		return true
	}
	return false
}

func monthName(s string) (time.Month, bool) {
	switch s {
	case "Jan":
		return time.January, true
	case "Feb":
		return time.February, true
	case "Mar":
		return time.March, true
	case "Apr":
		return time.April, true
	case "May":
		return time.May, true
	case "Jun":
		return time.June, true
	case "Jul":
		return time.July, true
	case "Aug":
		return time.August, true
	case "Sep":
		return time.September, true
	case "Oct":
		return time.October, true
	case "Nov":
		return time.November, true
	case "Dec":
		return time.December, true
	}
	return 0, false
}

// digits parses a fixed-width run of ASCII digits; an empty s is invalid.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
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
