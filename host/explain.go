package main

import (
	"flag"
	"os"

	"github.com/edgehost/edgehost/host/node"
	"github.com/edgehost/edgehost/host/processors"
)

// cmdExplain prints the processor chains the host would build for a URL
// (issue 16): formats at every step, why each built-in was inserted,
// and what could not be placed.
func cmdExplain(args []string) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	path := fs.String("config", "config.hcl", "config file")
	var o processors.ExplainOptions
	fs.StringVar(&o.Encoding, "encoding", "", "the origin's Content-Encoding (default: gzip, br and identity in turn)")
	fs.StringVar(&o.ContentType, "type", "text/html", "the origin's Content-Type")
	fs.StringVar(&o.AcceptEncoding, "accept-encoding", "", "the client's Accept-Encoding")
	// The URL may come before or after the flags.
	var rawURL string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return usageError{}
		}
		if fs.NArg() == 0 {
			break
		}
		if rawURL != "" {
			rawURL = ""
			break
		}
		rawURL, args = fs.Arg(0), fs.Args()[1:]
	}
	if rawURL == "" {
		return usageError{"usage: edgehost explain [-config FILE] [-encoding E] [-type T] [-accept-encoding AE] URL"}
	}
	cfg, err := node.LoadConfig(*path)
	if err != nil {
		return err
	}
	return processors.Explain(os.Stdout, cfg, rawURL, o)
}
