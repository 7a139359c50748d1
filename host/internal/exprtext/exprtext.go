// Package exprtext holds what the hand-written parsers of operators'
// expressions (ban expressions, log queries) share, so that both read a
// quoted value and point at a mistake the same way.
package exprtext

import "strings"

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
