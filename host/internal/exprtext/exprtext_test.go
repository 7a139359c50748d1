package exprtext

import (
	"errors"
	"strings"
	"testing"
)

func TestQuoted(t *testing.T) {
	for _, tc := range []struct {
		src, want string
		end       int
		ok        bool
	}{
		{`"abc" x`, "abc", 5, true},
		{`"a\"b\\c"`, `a"b\c`, 9, true},
		{`"\.png$"`, `\.png$`, 8, true},
		{`""`, "", 2, true},
		{`"abc`, "", 4, false},
		{`"ab\"`, "", 5, false},
	} {
		val, end, ok := Quoted(tc.src, 0)
		if val != tc.want || end != tc.end || ok != tc.ok {
			t.Errorf("Quoted(%q) = %q, %d, %v; want %q, %d, %v", tc.src, val, end, ok, tc.want, tc.end, tc.ok)
		}
	}
}

func TestLineCol(t *testing.T) {
	src := "ab\ncd\n\nef"
	for _, tc := range []struct{ pos, line, col int }{
		{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {4, 2, 2}, {7, 4, 1}, {9, 4, 3}, {99, 4, 3},
	} {
		if l, c := LineCol(src, tc.pos); l != tc.line || c != tc.col {
			t.Errorf("LineCol(%d) = %d:%d, want %d:%d", tc.pos, l, c, tc.line, tc.col)
		}
	}
}

func TestRegexp(t *testing.T) {
	for _, tc := range []struct {
		pattern  string
		tooLarge bool
	}{
		{`\.css$`, false},
		{`[a-z0-9]{1000}`, false},
		{`\pL{1000}x{1000}`, false},
		{`(?:a{30}b){30}`, false},
		{`(?:abcdefghij){1000,}`, false},
		{strings.Repeat(`.{1000}`, 21), true},
		{`(?:abcdefghij){1000}(?:abcdefghij){1000}`, true},
		{`(?:[a-z]{10}|[0-9]{10}|xyz){99}`, false},
	} {
		budget := MaxRegexpSize
		re, err := Regexp(tc.pattern, &budget)
		if tc.tooLarge != errors.Is(err, ErrRegexpTooLarge) || (err == nil) != (re != nil) {
			t.Errorf("%.40q: %v, want too large %v", tc.pattern, err, tc.tooLarge)
		}
	}
	budget := MaxRegexpSize
	if _, err := Regexp(`(`, &budget); err == nil || errors.Is(err, ErrRegexpTooLarge) {
		t.Errorf("bad pattern: %v", err)
	}
	// The bound is for all of an expression's patterns together.
	// (`.{1000}` four times is about 8000 instructions: two fit, not three.)
	p := strings.Repeat(`.{1000}`, 4)
	for i := range 3 {
		if _, err := Regexp(p, &budget); (err != nil) != (i == 2) {
			t.Errorf("pattern %d of 3 of about 8000 instructions each: %v", i+1, err)
		}
	}
}
