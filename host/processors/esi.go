package processors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// ESI on delivery (Edge Side Includes 1.0, the part that caches use):
// <esi:include src="/path" [onerror="continue"]/>, <esi:remove>…</esi:remove>,
// <!--esi …--> (the markup inside is processed, the comment dropped) and
// <esi:comment …/>. Each include is a self-request through the state
// machine (cached on its own, bounded by limits.max_depth: a page that
// includes itself ends in 508 at the depth limit, not in a loop).

// Include fetches one fragment (decoded) for the page being processed.
type Include func(ctx context.Context, src string) ([]byte, error)

var (
	esiIncludeRe = regexp.MustCompile(`(?s)^<esi:include\s([^>]*?)/?>(?:\s*</esi:include>)?`)
	esiAttrRe    = regexp.MustCompile(`([a-z]+)\s*=\s*"([^"]*)"`)
	errESISyntax = errors.New("esi: unterminated element")
)

// esiProcess expands the ESI markup of page.
func esiProcess(ctx context.Context, page []byte, include Include, max int64) ([]byte, error) {
	var out bytes.Buffer
	for len(page) > 0 {
		i := bytes.IndexByte(page, '<')
		if i < 0 {
			out.Write(page)
			break
		}
		out.Write(page[:i])
		page = page[i:]
		switch {
		case bytes.HasPrefix(page, []byte("<!--esi")):
			end := bytes.Index(page, []byte("-->"))
			if end < 0 {
				return nil, errESISyntax
			}
			inner, err := esiProcess(ctx, page[len("<!--esi"):end], include, max)
			if err != nil {
				return nil, err
			}
			out.Write(inner)
			page = page[end+3:]
		case bytes.HasPrefix(page, []byte("<esi:remove>")):
			end := bytes.Index(page, []byte("</esi:remove>"))
			if end < 0 {
				return nil, errESISyntax
			}
			page = page[end+len("</esi:remove>"):]
		case bytes.HasPrefix(page, []byte("<esi:comment")):
			end := bytes.Index(page, []byte("/>"))
			if end < 0 {
				return nil, errESISyntax
			}
			page = page[end+2:]
		case bytes.HasPrefix(page, []byte("<esi:include")):
			m := esiIncludeRe.FindSubmatchIndex(page)
			if m == nil {
				return nil, errESISyntax
			}
			attrs := map[string]string{}
			for _, a := range esiAttrRe.FindAllSubmatch(page[m[2]:m[3]], -1) {
				attrs[string(a[1])] = string(a[2])
			}
			page = page[m[1]:]
			frag, err := include(ctx, attrs["src"])
			if err != nil {
				if attrs["onerror"] == "continue" {
					continue
				}
				return nil, fmt.Errorf("esi:include %q: %w", attrs["src"], err)
			}
			out.Write(frag)
		default:
			out.WriteByte('<')
			page = page[1:]
		}
		if int64(out.Len()) > max {
			return nil, ErrTooLarge
		}
	}
	return out.Bytes(), nil
}

func esiStage(ctx context.Context, include Include, max int64) stage {
	return func(src io.Reader) io.Reader {
		return &lazy{open: func() (io.Reader, error) {
			b, err := readWhole(src, max)
			if err != nil {
				return nil, err
			}
			b, err = esiProcess(ctx, b, include, max)
			if err != nil {
				return nil, err
			}
			return bytes.NewReader(b), nil
		}}
	}
}
