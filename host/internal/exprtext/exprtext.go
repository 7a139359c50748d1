// Package exprtext holds what the hand-written parsers of operators'
// expressions (ban expressions, log queries) share, so that both read a
// quoted value and point at a mistake the same way.
package exprtext

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// Quoted reads the "..." string whose opening quote is src[start]: \" and
// \\ are escapes, any other backslash is kept, so "\.png$" is the regular
// expression it looks like. It returns the value and the index after the
// closing quote; ok is false when the string does not end.
func Quoted(src string, start int) (val string, end int, ok bool) {
	var sb strings.Builder
	for i := start + 1; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '"':
			return sb.String(), i + 1, true
		case c == '\\' && i+1 < len(src) && (src[i+1] == '"' || src[i+1] == '\\'):
			sb.WriteByte(src[i+1])
			i++
		default:
			sb.WriteByte(c)
		}
	}
	return "", len(src), false
}

// LineCol returns the 1-based line and byte column of pos in src.
func LineCol(src string, pos int) (line, col int) {
	line, col = 1, 1
	for i := 0; i < pos && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// MaxRegexpSize bounds the size of an operator's regular expressions, all
// of one expression (a query, a ban) together: the number of instructions
// they compile to, counted on their parse trees before they are compiled.
// Go's regexp is linear, but in the size of the program as well as the
// text, and its own cap (about 3 million instructions) lets a 4 KiB
// pattern such as `.{1000}` written 500 times allocate 100 MiB and take
// 0.3 s of CPU to compile, held as long as the query or ban lives (a
// followed log, every lookup checked against a ban). Patterns an operator
// means to write stay far below it (`[a-z0-9]{1000}` is about a thousand).
const MaxRegexpSize = 20000

// ErrRegexpTooLarge is returned by Regexp past the budget.
var ErrRegexpTooLarge = fmt.Errorf("regular expressions too large: more than %d instructions in all once their repeats are expanded", MaxRegexpSize)

// Regexp compiles an operator's RE2 pattern (Perl syntax, as
// regexp.Compile) after taking its size from *budget (MaxRegexpSize for
// a whole expression); regexp/syntax does the parsing.
func Regexp(pattern string, budget *int) (*regexp.Regexp, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, err
	}
	n := regexpSize(re)
	if n > *budget {
		return nil, ErrRegexpTooLarge
	}
	*budget -= n
	return regexp.Compile(pattern)
}

// regexpSize estimates the instructions re compiles to, repeats expanded
// (x{n,m} is m copies of x), saturating past MaxRegexpSize.
func regexpSize(re *syntax.Regexp) int {
	n := 1
	for _, sub := range re.Sub {
		n += regexpSize(sub)
	}
	if re.Op == syntax.OpRepeat {
		times := re.Max
		if times < 0 {
			times = re.Min + 1 // x{n,} is n copies and a star
		}
		n = n * max(times, 1)
	}
	if re.Op == syntax.OpLiteral {
		n += len(re.Rune)
	}
	return min(n, MaxRegexpSize+1)
}
