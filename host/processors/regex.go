package processors

import (
	"bytes"
	"io"
	"regexp"
)

// Substitution is one rule of regex: every match of Pattern is replaced
// by Replace ($1 expands).
type Substitution struct {
	Pattern *regexp.Regexp
	Replace []byte
}

// regexStage applies the substitutions, in order, to a whole body.
func regexStage(subs []Substitution, max int64) stage {
	return func(src io.Reader) io.Reader {
		return &lazy{open: func() (io.Reader, error) {
			b, err := readWhole(src, max)
			if err != nil {
				return nil, err
			}
			for _, s := range subs {
				b = s.Pattern.ReplaceAll(b, s.Replace)
			}
			return bytes.NewReader(b), nil
		}}
	}
}
