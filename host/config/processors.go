package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// A route's processors block (issue 16, DESIGN §9): the processors the
// route asks for on each side; host/processors builds the chains.
//
//	processors {
//	  fetch      = ["gzip"]            # between the origin and the cache
//	  deliver    = ["esi", "regex"]    # between the cache and the client
//	  buffer_max = "4MiB"              # cap of buffer, esi and regex
//	  store      = "as-received"       # or "chain": keep what the chain made
//	  regex { pattern = "foo(\\d)" replace = "bar$1" }
//	}
//
// A name may carry a position: "myproc@front" (default, front, last,
// fetch, storage). A plugin's processor is "PLUGIN.PROCESSOR", with the
// formats that the plugin declares in its Info.

// ProcessorNames are the processors a config may ask for.
var ProcessorNames = []string{"gzip", "gunzip", "brotli", "unbrotli", "buffer", "esi", "regex"}

// ProcessorPositions are the positions a processor may ask for.
var ProcessorPositions = []string{"default", "front", "last", "fetch", "storage"}

// DefaultBufferMax caps the processors that hold a whole body.
const DefaultBufferMax = 8 << 20

// Processors is a route's processors block.
type Processors struct {
	Fetch, Deliver []ProcessorRef
	BufferMax      int64
	// KeepEncoding: a decoder on the fetch side queues its encoder at
	// storage (store = "as-received", the default).
	KeepEncoding bool
	Regex        []RegexRule
	DeclRange    hcl.Range
}

// ProcessorRef is one processor asked for, with where it was asked.
type ProcessorRef struct {
	Name, Position string
	Range          hcl.Range
}

// RegexRule is one substitution of the regex processor.
type RegexRule struct {
	Pattern *regexp.Regexp
	Replace string
}

type processorsSchema struct {
	Fetch          *hcl.Attribute `hcl:"fetch,optional"`
	Deliver        *hcl.Attribute `hcl:"deliver,optional"`
	BufferMax      string         `hcl:"buffer_max,optional"`
	BufferMaxRange hcl.Range      `hcl:"buffer_max,attr_value_range"`
	Store          string         `hcl:"store,optional"`
	StoreRange     hcl.Range      `hcl:"store,attr_value_range"`
	Regex          []*regexSchema `hcl:"regex,block"`
	DeclRange      hcl.Range      `hcl:",def_range"`
}

type regexSchema struct {
	Pattern      string    `hcl:"pattern"`
	PatternRange hcl.Range `hcl:"pattern,attr_value_range"`
	Replace      string    `hcl:"replace"`
}

func buildProcessors(ps *processorsSchema) (*Processors, hcl.Diagnostics) {
	out := &Processors{BufferMax: DefaultBufferMax, KeepEncoding: true, DeclRange: ps.DeclRange}
	var diags hcl.Diagnostics
	var d hcl.Diagnostics
	out.Fetch, d = processorList(ps.Fetch)
	diags = append(diags, d...)
	out.Deliver, d = processorList(ps.Deliver)
	diags = append(diags, d...)
	diags = append(diags, sizeAttr(ps.BufferMaxRange, ps.BufferMax, &out.BufferMax)...)
	switch ps.Store {
	case "", "as-received":
	case "chain":
		out.KeepEncoding = false
	default:
		diags = append(diags, rangeErr(ps.StoreRange, "Invalid store", `use "as-received" (a decoded body is encoded again before storage) or "chain" (stored as the chain leaves it)`))
	}
	for _, rx := range ps.Regex {
		re, err := regexp.Compile(rx.Pattern)
		if err != nil {
			diags = append(diags, rangeErr(rx.PatternRange, "Invalid regular expression", err.Error()))
			continue
		}
		out.Regex = append(out.Regex, RegexRule{Pattern: re, Replace: rx.Replace})
	}
	asks := func(name string) bool {
		has := func(r ProcessorRef) bool { return r.Name == name }
		return slices.ContainsFunc(out.Fetch, has) || slices.ContainsFunc(out.Deliver, has)
	}
	if asks("regex") && len(out.Regex) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "regex without rules",
			Detail: "the route asks for regex but has no regex { pattern, replace } block: it changes nothing", Subject: ps.DeclRange.Ptr()})
	}
	return out, diags
}

// processorList reads a list of processor names, each diagnostic at its
// element.
func processorList(a *hcl.Attribute) ([]ProcessorRef, hcl.Diagnostics) {
	if a == nil {
		return nil, nil
	}
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		return nil, diags
	}
	var refs []ProcessorRef
	for _, e := range exprs {
		v, d := e.Value(nil)
		if d.HasErrors() || v.Type() != cty.String || v.IsNull() {
			diags = append(diags, rangeErr(e.Range(), "Invalid processor", `a processor is a name in quotes: "gzip", "esi@front"`))
			continue
		}
		name, pos, _ := strings.Cut(v.AsString(), "@")
		ref := ProcessorRef{Name: name, Position: or(pos, "default"), Range: e.Range()}
		if plugin, proc, ok := strings.Cut(name, "."); ok {
			// A plugin's processor (PLUGIN.PROCESSOR): the plugin declares
			// its formats; host/processors checks it when it attaches.
			if plugin == "" || proc == "" {
				diags = append(diags, rangeErr(e.Range(), "Invalid processor", `a plugin's processor is "PLUGIN.PROCESSOR"`))
				continue
			}
		} else if !slices.Contains(ProcessorNames, name) {
			diags = append(diags, rangeErr(e.Range(), "Unknown processor",
				fmt.Sprintf("%q is not a processor; known: %s", name, strings.Join(ProcessorNames, ", "))))
			continue
		}
		if !slices.Contains(ProcessorPositions, ref.Position) {
			diags = append(diags, rangeErr(e.Range(), "Unknown position",
				fmt.Sprintf("%q is not a position; use one of %s", pos, strings.Join(ProcessorPositions, ", "))))
			continue
		}
		if slices.ContainsFunc(refs, func(r ProcessorRef) bool { return r.Name == name }) {
			diags = append(diags, rangeErr(e.Range(), "Processor listed twice",
				fmt.Sprintf("%q is already in this list: a side runs each processor once", name)))
			continue
		}
		refs = append(refs, ref)
	}
	return refs, diags
}
