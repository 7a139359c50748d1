// Package ban parses and evaluates Varnish-style ban expressions.
//
// A ban invalidates every stored object it matches, without walking the
// cache: it is kept (and persisted) as its source text, and each object is
// tested against the bans added since it was stored when it is next looked
// up (or by a background lurker for bans that need no request fields). The
// syntax is what a Varnish operator types:
//
//	req.url ~ "^/img/" && obj.http.content-type == "image/png"
//	obj.status >= 500
//	req.http.host == example.com && req.url !~ \.css$
//
// Fields:
//
//	req.url         the URL of the request that stored the object
//	req.http.NAME   a header of that request (req.http.host is its host)
//	obj.status      the stored response's status code
//	obj.http.NAME   a header of the stored response
//
// Operators: == and != compare strings exactly; ~ and !~ match an RE2
// regular expression (Go's regexp, unanchored); obj.status compares as an
// integer with ==, !=, <, >, <= and >=. Conditions are joined with &&.
// Values are quoted "..." (\" and \\ are escapes, any other backslash is
// kept, so "\.png$" is the regular expression it looks like) or bare words
// that end at white space or &&. Header names are case-insensitive. A
// missing header reads as the empty string, so `obj.http.x-tag == ""`
// matches objects without it (Varnish differs here: there a missing header
// never satisfies == or ~; Object cannot tell absent from empty).
//
// Parse errors are *SyntaxError values naming line and byte column:
//
//	ban: 1:9: expected operator, found "=~"
package ban

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/edgehost/edgehost/host/internal/exprtext"
)

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("ban: syntax error")

// SyntaxError is a parse error at a position in the expression.
type SyntaxError struct {
	Line, Col int // 1-based; Col counts bytes
	Msg       string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("ban: %d:%d: %s", e.Line, e.Col, e.Msg) }

// Unwrap lets errors.Is(err, ErrSyntax) hold.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Object is what a ban is tested against: a stored object and the request
// that stored it. Header names are passed in canonical form
// (textproto.CanonicalMIMEHeaderKey), so an http.Header's Get, or a direct
// map index, finds them; an absent header is "".
type Object interface {
	URL() string
	ReqHeader(name string) string
	Status() int
	RespHeader(name string) string
}

type field uint8

const (
	fieldURL field = iota
	fieldReqHTTP
	fieldStatus
	fieldObjHTTP
)

type op uint8

const (
	opEq op = iota
	opNe
	opMatch
	opNoMatch
	opLt
	opGt
	opLe
	opGe
)

var opNames = [...]string{opEq: "==", opNe: "!=", opMatch: "~", opNoMatch: "!~", opLt: "<", opGt: ">", opLe: "<=", opGe: ">="}

// cond is one compiled "field op value" test.
type cond struct {
	field field
	op    op
	name  string // canonical header name for req.http / obj.http
	value string
	re    *regexp.Regexp
	num   int
}

// Ban is a compiled ban expression: conditions that must all hold. It is
// immutable and safe for concurrent use.
type Ban struct {
	conds       []cond
	src         string
	requestFree bool
}

// Parse compiles a ban expression. Its regular expressions are bounded
// in size (exprtext.Regexp).
func Parse(expr string) (*Ban, error) {
	p := parser{src: expr, reBudget: exprtext.MaxRegexpSize}
	b, err := p.parse()
	if err != nil {
		return nil, err
	}
	return b, nil
}

// parsePersisted compiles a ban that was accepted before and persisted:
// without the bound on its regular expressions' size, which came later, so
// that a ban stored before it still loads (a ban that failed to load
// would stop the cache from opening).
func parsePersisted(expr string) (*Ban, error) {
	p := parser{src: expr, persisted: true}
	b, err := p.parse()
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Match reports whether the ban applies to o: every condition holds.
func (b *Ban) Match(o Object) bool {
	for i := range b.conds {
		if !b.conds[i].match(o) {
			return false
		}
	}
	return true
}

func (c *cond) match(o Object) bool {
	if c.field == fieldStatus {
		s := o.Status()
		switch c.op {
		case opEq:
			return s == c.num
		case opNe:
			return s != c.num
		case opLt:
			return s < c.num
		case opGt:
			return s > c.num
		case opLe:
			return s <= c.num
		case opGe:
			return s >= c.num
		}
		return false
	}
	var v string
	switch c.field {
	case fieldURL:
		v = o.URL()
	case fieldReqHTTP:
		v = o.ReqHeader(c.name)
	case fieldObjHTTP:
		v = o.RespHeader(c.name)
	}
	switch c.op {
	case opEq:
		return v == c.value
	case opNe:
		return v != c.value
	case opMatch:
		return c.re.MatchString(v)
	case opNoMatch:
		return !c.re.MatchString(v)
	}
	return false
}

// String returns the expression in canonical form: single spaces, field
// names lowercased, string values quoted. Parse(b.String()) gives an
// equivalent ban with the same String, so this is the form to persist and
// to compare bans by.
func (b *Ban) String() string { return b.src }

// RequestFree reports whether the ban uses no req.* field, so that a
// background lurker can test it against stored objects without their
// request.
func (b *Ban) RequestFree() bool { return b.requestFree }

func (b *Ban) canonical() string {
	var sb strings.Builder
	for i, c := range b.conds {
		if i > 0 {
			sb.WriteString(" && ")
		}
		switch c.field {
		case fieldURL:
			sb.WriteString("req.url")
		case fieldReqHTTP:
			sb.WriteString("req.http.")
			sb.WriteString(strings.ToLower(c.name))
		case fieldStatus:
			sb.WriteString("obj.status")
		case fieldObjHTTP:
			sb.WriteString("obj.http.")
			sb.WriteString(strings.ToLower(c.name))
		}
		sb.WriteByte(' ')
		sb.WriteString(opNames[c.op])
		sb.WriteByte(' ')
		if c.field == fieldStatus {
			sb.WriteString(strconv.Itoa(c.num))
			continue
		}
		writeQuoted(&sb, c.value)
	}
	return sb.String()
}

// writeQuoted quotes a value so that the parser reads it back unchanged:
// a backslash is doubled only where the parser would take it as an escape
// (before " or \, or last), so regular expressions stay readable.
func writeQuoted(sb *strings.Builder, v string) {
	sb.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			if i+1 == len(v) || v[i+1] == '"' || v[i+1] == '\\' {
				sb.WriteString(`\\`)
			} else {
				sb.WriteByte('\\')
			}
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('"')
}

// parser is a hand-written scanner and parser over the expression bytes.
type parser struct {
	src       string
	pos       int
	persisted bool // parsePersisted
	reBudget  int  // what is left of the regular expressions' size bound (exprtext.Regexp)
}

func (p *parser) parse() (*Ban, error) {
	b := &Ban{requestFree: true}
	for {
		c, err := p.condition()
		if err != nil {
			return nil, err
		}
		b.conds = append(b.conds, c)
		if c.field == fieldURL || c.field == fieldReqHTTP {
			b.requestFree = false
		}
		p.skipSpace()
		if p.pos == len(p.src) {
			break
		}
		if !strings.HasPrefix(p.src[p.pos:], "&&") {
			return nil, p.errorf(p.pos, "expected \"&&\" or end of expression, found %s", p.found(p.pos))
		}
		p.pos += 2
	}
	b.src = b.canonical()
	return b, nil
}

func (p *parser) condition() (cond, error) {
	var c cond
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.src) && isIdent(p.src[p.pos]) {
		p.pos++
	}
	name := p.src[start:p.pos]
	if name == "" {
		return c, p.errorf(start, "expected field, found %s", p.found(start))
	}
	switch {
	case name == "req.url":
		c.field = fieldURL
	case name == "obj.status":
		c.field = fieldStatus
	case strings.HasPrefix(name, "req.http."):
		c.field = fieldReqHTTP
		c.name = name[len("req.http."):]
	case strings.HasPrefix(name, "obj.http."):
		c.field = fieldObjHTTP
		c.name = name[len("obj.http."):]
	default:
		return c, p.errorf(start, "unknown field %q (want req.url, req.http.NAME, obj.status or obj.http.NAME)", name)
	}
	if c.field == fieldReqHTTP || c.field == fieldObjHTTP {
		if !validHeaderName(c.name) {
			return c, p.errorf(start, "bad header name %q in %q", c.name, name)
		}
		c.name = textproto.CanonicalMIMEHeaderKey(c.name)
	}

	p.skipSpace()
	opStart := p.pos
	for p.pos < len(p.src) && isOpChar(p.src[p.pos]) {
		p.pos++
	}
	o, ok := parseOp(p.src[opStart:p.pos])
	if !ok {
		return c, p.errorf(opStart, "expected operator, found %s", p.found(opStart))
	}
	c.op = o
	if c.field == fieldStatus && (o == opMatch || o == opNoMatch) {
		return c, p.errorf(opStart, "operator %q does not apply to obj.status (want ==, !=, <, >, <= or >=)", opNames[o])
	}
	if c.field != fieldStatus && o >= opLt {
		return c, p.errorf(opStart, "operator %q applies only to obj.status (want ==, !=, ~ or !~)", opNames[o])
	}

	p.skipSpace()
	valStart := p.pos
	v, err := p.value()
	if err != nil {
		return c, err
	}
	switch {
	case c.field == fieldStatus:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 999 {
			return c, p.errorf(valStart, "expected a status code, found %s", p.found(valStart))
		}
		c.num = n
	case o == opMatch || o == opNoMatch:
		var re *regexp.Regexp
		var err error
		if p.persisted {
			re, err = regexp.Compile(v)
		} else {
			re, err = exprtext.Regexp(v, &p.reBudget)
		}
		if err != nil {
			return c, p.errorf(valStart, "bad regular expression: %v", err)
		}
		c.re = re
		c.value = v
	default:
		c.value = v
	}
	return c, nil
}

// value reads a quoted string or a bare word.
func (p *parser) value() (string, error) {
	start := p.pos
	if p.pos == len(p.src) {
		return "", p.errorf(start, "expected value, found end of expression")
	}
	if p.src[p.pos] != '"' {
		for p.pos < len(p.src) && !isSpace(p.src[p.pos]) && !strings.HasPrefix(p.src[p.pos:], "&&") {
			p.pos++
		}
		if p.pos == start {
			return "", p.errorf(start, "expected value, found %s", p.found(start))
		}
		return p.src[start:p.pos], nil
	}
	v, end, ok := exprtext.Quoted(p.src, start)
	if ok {
		p.pos = end
		return v, nil
	}
	return "", p.errorf(start, "unterminated string")
}

func parseOp(s string) (op, bool) {
	for o, n := range opNames {
		if s == n {
			return op(o), true
		}
	}
	return 0, false
}

// found describes what is at pos for an error message.
func (p *parser) found(pos int) string {
	if pos >= len(p.src) {
		return "end of expression"
	}
	end := pos
	switch c := p.src[pos]; {
	case isOpChar(c) || c == '&' || c == '|':
		for end < len(p.src) && (isOpChar(p.src[end]) || p.src[end] == '&' || p.src[end] == '|') {
			end++
		}
	default:
		for end < len(p.src) && !isSpace(p.src[end]) {
			end++
		}
	}
	s := p.src[pos:end]
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	line, col := exprtext.LineCol(p.src, pos)
	return &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isOpChar(c byte) bool { return c == '=' || c == '!' || c == '~' || c == '<' || c == '>' }

func isIdent(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
}

// validHeaderName accepts RFC 9110 tokens made of letters, digits, - and _
// (the identifier characters, minus the dot).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isIdent(c) || c == '.' {
			return false
		}
	}
	return true
}
