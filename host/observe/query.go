package observe

// The query language of `edgehost log -q` and `edgehost top -q` (issue 17),
// in the spirit of varnishlog's -q, over the fields of a Tx:
//
//	status >= 500 && route == "/api/"
//	miss && dur > 100ms
//	url ~ "\.css$" || (host == "img.example" && !hit)
//
// A condition is FIELD OP VALUE, or a field alone: a flag, or any field
// read as "is set" (a non-empty string, a non-zero number, `parent` for a
// subrequest, `error` for a failed one). Operators: == != < <= > >= compare
// numbers and durations (strings only with == and !=); ~ and !~ match an RE2
// regular expression (Go's regexp, unanchored) against the field's text, so
// `status ~ "^5"` works too. Conditions combine with && (binding tighter),
// || and !, grouped by parentheses. Values are quoted "..." (\" and \\ are
// escapes, any other backslash is kept, so "\.css$" is the regular
// expression it looks like, as in ban expressions), numbers, or durations
// with a unit (100ms, 1.5s, 2m; time.ParseDuration).
//
// The parser is written by hand: no library parses expressions over our own
// fields with errors that point at a column, and the grammar is a dozen
// lines. Parse errors are *QueryError values naming line and byte column.

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/internal/exprtext"
)

// ErrQuery is wrapped by every error ParseQuery returns.
var ErrQuery = errors.New("query syntax error")

// QueryError is a parse error at a position in the query.
type QueryError struct {
	Line, Col int // 1-based; Col counts bytes
	Msg       string
}

func (e *QueryError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Unwrap lets errors.Is(err, ErrQuery) hold.
func (e *QueryError) Unwrap() error { return ErrQuery }

// Limits of a query: it arrives from the admin API's clients, so its size
// and nesting (the parser recurses) are bounded.
const (
	MaxQueryLen   = 4096
	maxQueryDepth = 64
)

// Query is a parsed filter. The nil *Query matches every record.
type Query struct {
	src  string
	root qnode
}

// ParseQuery parses src; an empty (or blank) src gives the nil Query.
func ParseQuery(src string) (*Query, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	if len(src) > MaxQueryLen {
		return nil, &QueryError{Line: 1, Col: 1, Msg: fmt.Sprintf("query longer than %d bytes", MaxQueryLen)}
	}
	p := &qparser{src: src, reBudget: exprtext.MaxRegexpSize}
	p.next()
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.fail("expected && or || or the end, found %s", p.found())
	}
	return &Query{src: src, root: n}, nil
}

// Match reports whether tx satisfies the query.
func (q *Query) Match(tx *Tx) bool { return q == nil || q.root.eval(tx) }

// String returns the query's source.
func (q *Query) String() string {
	if q == nil {
		return ""
	}
	return q.src
}

// Fields.

type ftype uint8

const (
	fString   ftype = iota
	fNumber         // int64
	fDuration       // int64 nanoseconds
	fID             // a TxID, written in base 36
	fFlag           // a keyword that is true or false
)

var ftypeNames = [...]string{fString: "a string", fNumber: "a number", fDuration: "a duration", fID: "a transaction id", fFlag: "a flag"}

type qfield struct {
	typ  ftype
	str  func(*Tx) string
	num  func(*Tx) int64
	flag func(*Tx) bool
}

var qfields = map[string]qfield{
	"id":     {typ: fID, num: func(tx *Tx) int64 { return int64(tx.ID) }},
	"parent": {typ: fID, num: func(tx *Tx) int64 { return int64(tx.Parent) }},
	"root":   {typ: fID, num: func(tx *Tx) int64 { return int64(tx.Root) }},
	"kind":   {typ: fString, str: func(tx *Tx) string { return tx.Kind }},
	"method": {typ: fString, str: func(tx *Tx) string { return tx.Method }},
	"host":   {typ: fString, str: func(tx *Tx) string { return tx.Host }},
	"url":    {typ: fString, str: func(tx *Tx) string { return tx.URL }},
	"route":  {typ: fString, str: func(tx *Tx) string { return tx.Route }},
	"cache":  {typ: fString, str: func(tx *Tx) string { return tx.Cache }},
	"fwd":    {typ: fString, str: func(tx *Tx) string { v, _ := CacheParam(tx.Cache, "fwd"); return v }},
	"remote": {typ: fString, str: func(tx *Tx) string { return tx.Remote }},
	"error":  {typ: fString, str: func(tx *Tx) string { return tx.Error }},
	"status": {typ: fNumber, num: func(tx *Tx) int64 { return int64(tx.Status) }},
	"bytes":  {typ: fNumber, num: func(tx *Tx) int64 { return tx.Bytes }},
	"dur":    {typ: fDuration, num: func(tx *Tx) int64 { return int64(tx.Duration) }},
	"ttfb":   {typ: fDuration, num: func(tx *Tx) int64 { return int64(tx.TTFB) }},

	"hit":       {typ: fFlag, flag: IsHit},
	"miss":      {typ: fFlag, flag: IsMiss},
	"pass":      {typ: fFlag, flag: IsPass},
	"stored":    {typ: fFlag, flag: func(tx *Tx) bool { _, ok := CacheParam(tx.Cache, "stored"); return ok }},
	"collapsed": {typ: fFlag, flag: func(tx *Tx) bool { _, ok := CacheParam(tx.Cache, "collapsed"); return ok }},
}

// QueryFields lists the field names a query may use, sorted.
func QueryFields() []string {
	names := make([]string, 0, len(qfields))
	for n := range qfields {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CacheParam finds a parameter of a Cache-Status value (RFC 9211) such as
// "edgehost; fwd=uri-miss; stored": ("uri-miss", true) for "fwd", ("",
// true) for "stored". The fast path logs a bare "hit", which reads as the
// parameter hit. It does not allocate.
func CacheParam(cache, name string) (string, bool) {
	for cache != "" {
		part := cache
		if i := strings.IndexByte(cache, ';'); i >= 0 {
			part, cache = cache[:i], cache[i+1:]
		} else {
			cache = ""
		}
		part = strings.TrimSpace(part)
		if part == name {
			return "", true
		}
		if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
			return strings.Trim(part[len(name)+1:], `"`), true
		}
	}
	return "", false
}

// IsHit reports whether tx was answered from the cache.
func IsHit(tx *Tx) bool { _, ok := CacheParam(tx.Cache, "hit"); return ok }

// IsMiss reports whether tx went to the origin because nothing usable was
// stored (fwd=uri-miss, vary-miss or miss).
func IsMiss(tx *Tx) bool {
	switch v, _ := CacheParam(tx.Cache, "fwd"); v {
	case "uri-miss", "vary-miss", "miss":
		return true
	}
	return false
}

// IsPass reports whether tx bypassed the cache (a pass route or an
// uncacheable method).
func IsPass(tx *Tx) bool {
	switch v, _ := CacheParam(tx.Cache, "fwd"); v {
	case "bypass", "method":
		return true
	}
	return false
}

// Evaluation.

type qnode interface{ eval(*Tx) bool }

type (
	qand  struct{ l, r qnode }
	qor   struct{ l, r qnode }
	qnot  struct{ x qnode }
	qflag struct{ f func(*Tx) bool }
	qset  struct{ f qfield } // a field alone: is it set?
	qstr  struct {
		get func(*Tx) string
		neg bool
		val string
	}
	qnum struct {
		get func(*Tx) int64
		op  string
		val int64
	}
	qre struct {
		f   qfield
		neg bool
		re  *regexp.Regexp
	}
)

func (n qand) eval(tx *Tx) bool  { return n.l.eval(tx) && n.r.eval(tx) }
func (n qor) eval(tx *Tx) bool   { return n.l.eval(tx) || n.r.eval(tx) }
func (n qnot) eval(tx *Tx) bool  { return !n.x.eval(tx) }
func (n qflag) eval(tx *Tx) bool { return n.f(tx) }
func (n qstr) eval(tx *Tx) bool  { return (n.get(tx) == n.val) != n.neg }
func (n qre) eval(tx *Tx) bool   { return n.re.MatchString(n.f.text(tx)) != n.neg }

func (n qset) eval(tx *Tx) bool {
	if n.f.str != nil {
		return n.f.str(tx) != ""
	}
	return n.f.num(tx) != 0
}

func (n qnum) eval(tx *Tx) bool {
	v := n.get(tx)
	switch n.op {
	case "==":
		return v == n.val
	case "!=":
		return v != n.val
	case "<":
		return v < n.val
	case "<=":
		return v <= n.val
	case ">":
		return v > n.val
	}
	return v >= n.val // ">="
}

// text is the field as a regular expression sees it: durations as
// time.Duration prints them, ids in base 36.
func (f qfield) text(tx *Tx) string {
	switch f.typ {
	case fString:
		return f.str(tx)
	case fDuration:
		return time.Duration(f.num(tx)).String()
	case fID:
		return TxID(f.num(tx)).String()
	}
	return strconv.FormatInt(f.num(tx), 10)
}

// Parsing.

type qtokKind uint8

const (
	tEOF qtokKind = iota
	tIdent
	tString
	tNumber // digits, maybe with a fraction and a unit: 500, 1.5s, 100ms
	tOp     // == != < <= > >= ~ !~
	tNot
	tAnd
	tOr
	tLParen
	tRParen
	tBad // a character that starts no token
)

type qtok struct {
	kind qtokKind
	pos  int
	text string // the source text; for tString the unquoted value
}

type qparser struct {
	src string
	pos int
	tok qtok
	err error // a lexing error, reported when the token is used
	// reBudget is what is left of the regular expressions' size bound,
	// shared by all of the query's (exprtext.Regexp).
	reBudget int
}

func (p *qparser) next() {
	for p.pos < len(p.src) && isQuerySpace(p.src[p.pos]) {
		p.pos++
	}
	start := p.pos
	if p.pos >= len(p.src) {
		p.tok = qtok{kind: tEOF, pos: start}
		return
	}
	two := ""
	if p.pos+1 < len(p.src) {
		two = p.src[p.pos : p.pos+2]
	}
	switch c := p.src[p.pos]; {
	case two == "==" || two == "!=" || two == "<=" || two == ">=" || two == "!~":
		p.pos += 2
		p.tok = qtok{kind: tOp, pos: start, text: two}
	case two == "&&":
		p.pos += 2
		p.tok = qtok{kind: tAnd, pos: start, text: two}
	case two == "||":
		p.pos += 2
		p.tok = qtok{kind: tOr, pos: start, text: two}
	case c == '<' || c == '>' || c == '~':
		p.pos++
		p.tok = qtok{kind: tOp, pos: start, text: string(c)}
	case c == '!':
		p.pos++
		p.tok = qtok{kind: tNot, pos: start, text: "!"}
	case c == '(':
		p.pos++
		p.tok = qtok{kind: tLParen, pos: start, text: "("}
	case c == ')':
		p.pos++
		p.tok = qtok{kind: tRParen, pos: start, text: ")"}
	case c == '"':
		p.tok = p.quoted()
	case c >= '0' && c <= '9' || c == '-' || c == '.':
		p.pos++
		for p.pos < len(p.src) && isQueryWord(p.src[p.pos]) {
			p.pos++
		}
		p.tok = qtok{kind: tNumber, pos: start, text: p.src[start:p.pos]}
	case isQueryIdentStart(c):
		for p.pos < len(p.src) && isQueryWord(p.src[p.pos]) {
			p.pos++
		}
		p.tok = qtok{kind: tIdent, pos: start, text: p.src[start:p.pos]}
	default:
		p.pos++
		for p.pos < len(p.src) && p.src[p.pos] >= 0x80 && p.src[p.pos] < 0xc0 {
			p.pos++ // the rest of a UTF-8 sequence
		}
		p.tok = qtok{kind: tBad, pos: start, text: p.src[start:p.pos]}
	}
}

// quoted reads a "..." string: \" and \\ are escapes, any other backslash
// is kept (the rule of ban expressions).
func (p *qparser) quoted() qtok {
	start := p.pos
	v, end, ok := exprtext.Quoted(p.src, start)
	p.pos = end
	if !ok {
		p.err = p.errorf(start, "unterminated string")
		return qtok{kind: tBad, pos: start, text: p.src[start:]}
	}
	return qtok{kind: tString, pos: start, text: v}
}

func (p *qparser) or(depth int) (qnode, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tOr {
		p.next()
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = qor{l, r}
	}
	return l, nil
}

func (p *qparser) and(depth int) (qnode, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tAnd {
		p.next()
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = qand{l, r}
	}
	return l, nil
}

func (p *qparser) unary(depth int) (qnode, error) {
	if depth >= maxQueryDepth {
		return nil, p.errorf(p.tok.pos, "query nested deeper than %d", maxQueryDepth)
	}
	switch p.tok.kind {
	case tNot:
		p.next()
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return qnot{x}, nil
	case tLParen:
		open := p.tok.pos
		p.next()
		x, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			l, c := exprtext.LineCol(p.src, open)
			return nil, p.fail("expected \")\" to close the \"(\" at %d:%d, found %s", l, c, p.found())
		}
		p.next()
		return x, nil
	case tIdent:
		return p.condition()
	}
	return nil, p.fail("expected a field name, \"!\" or \"(\", found %s", p.found())
}

func (p *qparser) condition() (qnode, error) {
	name := p.tok
	f, ok := qfields[name.text]
	if !ok {
		return nil, p.errorf(name.pos, "unknown field %q (fields: %s)", name.text, strings.Join(QueryFields(), " "))
	}
	p.next()
	if p.tok.kind != tOp {
		if p.tok.kind == tBad && p.tok.text == "=" {
			return nil, p.errorf(p.tok.pos, "expected an operator (== != < <= > >= ~ !~), found \"=\"")
		}
		if f.typ == fFlag {
			return qflag{f.flag}, nil
		}
		return qset{f}, nil
	}
	op := p.tok
	if f.typ == fFlag {
		return nil, p.errorf(op.pos, "%s is a flag: write %s or !%s, without %q", name.text, name.text, name.text, op.text)
	}
	p.next()
	v := p.tok
	if v.kind != tString && v.kind != tNumber && v.kind != tIdent {
		return nil, p.fail("expected a value after %q, found %s", op.text, p.found())
	}
	p.next()
	if op.text == "~" || op.text == "!~" {
		if v.kind != tString {
			return nil, p.errorf(v.pos, "expected a quoted regular expression after %q, found %s", op.text, strconv.Quote(v.text))
		}
		re, err := exprtext.Regexp(v.text, &p.reBudget)
		if err != nil {
			return nil, p.errorf(v.pos, "bad regular expression: %v", err)
		}
		return qre{f: f, neg: op.text == "!~", re: re}, nil
	}
	switch f.typ {
	case fString:
		if op.text != "==" && op.text != "!=" {
			return nil, p.errorf(op.pos, "%s is a string: compare it with == != ~ !~, not %q", name.text, op.text)
		}
		if v.kind == tNumber {
			return nil, p.errorf(v.pos, "%s is a string: expected a quoted value after %q, found %s", name.text, op.text, strconv.Quote(v.text))
		}
		return qstr{get: f.str, neg: op.text == "!=", val: v.text}, nil
	case fID:
		if op.text != "==" && op.text != "!=" {
			return nil, p.errorf(op.pos, "%s is a transaction id: compare it with == != ~ !~, not %q", name.text, op.text)
		}
		var id uint64
		if v.text != "" && v.text != "0" {
			var err error
			if id, err = strconv.ParseUint(v.text, 36, 64); err != nil || id == 0 {
				return nil, p.errorf(v.pos, "%s is a transaction id: expected a base-36 id such as \"k2x7p01\", found %s", name.text, strconv.Quote(v.text))
			}
		}
		return qnum{get: f.num, op: op.text, val: int64(id)}, nil
	case fNumber:
		n, err := strconv.ParseInt(v.text, 10, 64)
		if v.kind != tNumber || err != nil {
			return nil, p.errorf(v.pos, "%s is a number: expected a whole number after %q, found %s", name.text, op.text, strconv.Quote(v.text))
		}
		return qnum{get: f.num, op: op.text, val: n}, nil
	}
	// fDuration
	d, err := time.ParseDuration(v.text)
	if v.kind != tNumber || err != nil {
		hint := ""
		if _, nerr := strconv.ParseFloat(v.text, 64); nerr == nil {
			hint = " (write a unit: ns us ms s m h)"
		}
		return nil, p.errorf(v.pos, "%s is a duration: expected a duration such as 100ms after %q, found %s%s", name.text, op.text, strconv.Quote(v.text), hint)
	}
	return qnum{get: f.num, op: op.text, val: int64(d)}, nil
}

// found describes the current token for an error message.
func (p *qparser) found() string {
	switch p.tok.kind {
	case tEOF:
		return "the end of the query"
	case tString:
		return "string " + strconv.Quote(p.tok.text)
	}
	s := p.tok.text
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

// fail reports an error at the current token; a token the lexer could not
// read (an unterminated string) reports that instead.
func (p *qparser) fail(format string, args ...any) error {
	if p.tok.kind == tBad && p.err != nil {
		return p.err
	}
	return p.errorf(p.tok.pos, format, args...)
}

func (p *qparser) errorf(pos int, format string, args ...any) error {
	line, col := exprtext.LineCol(p.src, pos)
	return &QueryError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func isQuerySpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isQueryIdentStart(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }

// isQueryWord: letters, digits, and what a number or duration holds
// (1.5s, 2h45m, 1e3), plus µ of µs.
func isQueryWord(c byte) bool {
	return isQueryIdentStart(c) || '0' <= c && c <= '9' || c == '.' || c == 0xc2 || c == 0xb5
}
