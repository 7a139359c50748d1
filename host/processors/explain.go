package processors

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/edgehost/edgehost/host/config"
)

// starts are the origin formats that validate and explain try when the
// origin's answer is not known.
var starts = []Format{Gzip, Br, Text}

// Diagnose warns, at the element that asks for it, about every
// processor that no origin answer (gzip, br or text) would give a place
// (edgehost validate; the log says it again per response).
func Diagnose(cfg *config.Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, route := range cfg.Routes {
		rp := NewRoute(route)
		if rp == nil {
			continue
		}
		check := func(side Side, refs []config.ProcessorRef, chain func(Format) Chain) {
			for _, ref := range refs {
				if strings.Contains(ref.Name, ".") {
					continue // a plugin's formats are known once it runs
				}
				placed, why := false, ""
				for _, f := range starts {
					c := chain(f)
					i := indexUnplaced(c, ref.Name)
					if i < 0 || c.Unplaced[i].NotNeeded {
						placed = true
						break
					}
					why = c.Unplaced[i].Why
				}
				if !placed {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Processor never placed",
						Detail:  fmt.Sprintf("route %q: %s is placed for no origin answer (gzip, br, text): %s", route.Prefix, ref.Name, why),
						Subject: ref.Range.Ptr()})
				}
			}
		}
		check(FetchSide, route.Processors.Fetch, func(f Format) Chain { return rp.Chain(FetchSide, f, nil) })
		check(DeliverSide, route.Processors.Deliver, func(f Format) Chain {
			return rp.Chain(DeliverSide, rp.Chain(FetchSide, f, nil).Out(), []string{"identity"})
		})
	}
	return diags
}

func indexUnplaced(c Chain, name string) int {
	for i, u := range c.Unplaced {
		if u.Name == name {
			return i
		}
	}
	return -1
}

// ExplainOptions say what explain assumes about the origin and client.
type ExplainOptions struct {
	Encoding       string // the origin's Content-Encoding ("": try gzip, br, identity)
	ContentType    string // the origin's Content-Type ("": text/html)
	AcceptEncoding string // the client's
}

// Explain prints the chains that the host would build for rawURL: the
// route, the fetch chain for the origin's answer and the delivery chain
// for the client, with the formats at every step and why each built-in
// is there.
func Explain(w io.Writer, cfg *config.Config, rawURL string, o ExplainOptions) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if u.Path == "" {
		u.Path = "/"
	}
	route := matchRoute(cfg, u)
	if route == nil {
		return fmt.Errorf("no route matches %s", rawURL)
	}
	fmt.Fprintf(w, "route %q (%s)\n", route.Prefix, route.DeclRange)
	if route.When != nil {
		fmt.Fprintln(w, "  (the route has a `when` condition: explain assumes it holds)")
	}
	rp := NewRoute(route)
	if rp == nil {
		fmt.Fprintln(w, "  no processors block: bodies are stored and delivered as the origin sends them")
		return nil
	}
	encs := []string{o.Encoding}
	if o.Encoding == "" {
		encs = []string{"gzip", "br", "identity"}
	}
	ct := o.ContentType
	if ct == "" {
		ct = "text/html"
	}
	sink := Sink(o.AcceptEncoding)
	for _, enc := range encs {
		h := http.Header{"Content-Type": {ct}}
		if enc != "identity" {
			h.Set("Content-Encoding", enc)
		}
		fc := rp.Chain(FetchSide, FormatOf(h), nil)
		fmt.Fprintf(w, "\norigin answers Content-Encoding: %s, Content-Type: %s\n", enc, ct)
		fmt.Fprintf(w, "fetch:   %s\n%s", fc, fc.Explain())
		dc := rp.Chain(DeliverSide, fc.Out(), sink)
		fmt.Fprintf(w, "deliver to Accept-Encoding %q (takes %s):   %s\n%s", o.AcceptEncoding, strings.Join(sink, ", "),
			strings.Replace(dc.String(), "beresp(", "stored(", 1), strings.Replace(dc.Explain(), "origin   ", "stored   ", 1))
	}
	return nil
}

// matchRoute is the server's route match without conditions: host,
// then the longest prefix (the config keeps routes in that order).
func matchRoute(cfg *config.Config, u *url.URL) *config.Route {
	host := strings.ToLower(u.Hostname())
	for _, rt := range cfg.Routes {
		if !strings.HasPrefix(u.Path, rt.Prefix) {
			continue
		}
		ok := len(rt.Hosts) == 0
		for _, h := range rt.Hosts {
			ok = ok || h == host || h == "*" || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]))
		}
		if ok {
			return rt
		}
	}
	return nil
}
