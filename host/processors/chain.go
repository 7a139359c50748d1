package processors

import (
	"fmt"
	"slices"
	"strings"
)

// Format names what a body is at one point of a chain (DESIGN §9):
// a content coding (gzip, br), plain text, text that a step marked
// (esitext), a whole body in one buffer (buffertext) or a media type for
// bodies that are not text (image/jpeg).
type Format string

// The formats of the built-ins.
const (
	Gzip       Format = "gzip"
	Br         Format = "br"
	Text       Format = "text"
	ESIText    Format = "esitext"
	BufferText Format = "buffertext"
)

// Coding is the content coding a format is sent with: "gzip", "br" or
// "identity" for every decoded format.
func (f Format) Coding() string {
	switch f {
	case Gzip, Br:
		return string(f)
	}
	if strings.Contains(string(f), "/") || f == Text || f == ESIText || f == BufferText {
		return "identity"
	}
	return string(f) // deflate, zstd …: nothing here decodes them
}

// Position is where a processor prefers to sit.
type Position int

// Positions: fetch and storage are hard (first after the origin, last
// before the cache), front and last are preferences among the rest.
const (
	Default Position = iota
	Front
	Last
	FetchPos
	Storage
)

var posNames = [...]string{"default", "front", "last", "fetch", "storage"}

func (p Position) String() string { return posNames[p] }

// ParsePosition reads a position's name.
func ParsePosition(s string) (Position, bool) {
	i := slices.Index(posNames[:], s)
	return Position(max(i, 0)), i >= 0
}

// Spec is a processor as the chain builder sees it.
type Spec struct {
	Name string
	In   []Format
	Out  Format
	Pos  Position
	// Label is how the step prints when it differs from Name (a replaced
	// processor: "esi+gzip").
	Label string
	// placed is the side effect of placing the processor: it may change
	// itself (replace) and the remaining candidates (queue, remove).
	placed func(self *Spec, b *builder)
}

func (s Spec) accepts(f Format) bool { return slices.Contains(s.In, f) }

func (s Spec) label() string {
	if s.Label != "" {
		return s.Label
	}
	return s.Name
}

// Step is one placed processor.
type Step struct {
	Name    string // the processor (its runtime name)
	Label   string // as printed
	In, Out Format
	Builtin bool   // inserted by the host, not asked for
	Why     string // why a built-in was inserted or queued
}

// Unplaced is a candidate that found no place: never dropped silently.
type Unplaced struct {
	Name string
	Why  string
	// NotNeeded: a decoder asked for on a body not in its encoding
	// (gunzip on plain text); said, but not a warning.
	NotNeeded bool
}

// Warnings are the unplaced candidates that are worth a warning.
func (c Chain) Warnings() []Unplaced {
	var w []Unplaced
	for _, u := range c.Unplaced {
		if !u.NotNeeded {
			w = append(w, u)
		}
	}
	return w
}

func decoder(name string) bool { return name == "gunzip" || name == "unbrotli" }

// Chain is the chain built for one start format.
type Chain struct {
	Start    Format
	Steps    []Step
	Unplaced []Unplaced
}

// Out is the format at the end of the chain.
func (c Chain) Out() Format {
	if len(c.Steps) == 0 {
		return c.Start
	}
	return c.Steps[len(c.Steps)-1].Out
}

// String prints the chain as the seed's proposal writes it:
// "beresp(gzip) > gunzip > myvfp > gzip".
func (c Chain) String() string {
	var b strings.Builder
	b.WriteString("beresp(" + string(c.Start) + ")")
	for _, s := range c.Steps {
		b.WriteString(" > " + s.Label)
	}
	for _, u := range c.Unplaced {
		b.WriteString(" [unplaced: " + u.Name + "]")
	}
	return b.String()
}

// Explain prints the chain one step a line, with the formats at every
// step and why each built-in is there (edgehost explain).
func (c Chain) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  origin          %s\n", c.Start)
	for _, s := range c.Steps {
		kind := "asked"
		if s.Builtin {
			kind = "built-in"
		}
		fmt.Fprintf(&b, "  %-15s %s → %s  (%s", s.Label, s.In, s.Out, kind)
		if s.Why != "" {
			b.WriteString(": " + s.Why)
		}
		b.WriteString(")\n")
	}
	for _, u := range c.Unplaced {
		fmt.Fprintf(&b, "  %-15s NOT PLACED: %s\n", u.Name, u.Why)
	}
	return b.String()
}

// BuildOptions are the options of a build.
type BuildOptions struct {
	// Sink is the content codings that the end of the chain must have
	// (a client's Accept-Encoding on delivery); nil: any (storage).
	Sink []string
	// KeepEncoding: a decoder placed on the fetch side queues its encoder
	// at storage, so objects are stored in the encoding they came in.
	KeepEncoding bool
}

// builtins are always available and never need asking for.
var builtins = []Spec{
	{Name: "gunzip", In: []Format{Gzip}, Out: Text, placed: queueEncoder("gzip")},
	{Name: "unbrotli", In: []Format{Br}, Out: Text, placed: queueEncoder("brotli")},
	{Name: "gzip", In: []Format{Text}, Out: Gzip},
	{Name: "brotli", In: []Format{Text}, Out: Br},
	{Name: "buffer", In: []Format{Text}, Out: BufferText},
}

// Builtin returns the built-in converter called name.
func Builtin(name string) (Spec, bool) {
	for _, b := range builtins {
		if b.Name == name {
			return b, true
		}
	}
	return Spec{}, false
}

// queueEncoder is a decoder's side effect: with KeepEncoding, the
// matching encoder is queued at storage unless a storage candidate is
// there already.
func queueEncoder(enc string) func(*Spec, *builder) {
	return func(self *Spec, b *builder) {
		if !b.opt.KeepEncoding || b.hasStorage() {
			return
		}
		s := Spec{Name: enc, In: []Format{Text}, Out: Gzip, Pos: Storage}
		if enc == "brotli" {
			s.Out = Br
		}
		b.queue = append(b.queue, queued{Spec: s, builtin: true,
			why: self.Name + " queues " + enc + " at storage: stored in the encoding it came in"})
	}
}

type queued struct {
	Spec
	builtin bool
	why     string
}

type builder struct {
	opt   BuildOptions
	cur   Format
	queue []queued
	chain Chain
}

func (b *builder) hasStorage() bool {
	return slices.ContainsFunc(b.queue, func(q queued) bool { return q.Pos == Storage })
}

func group(p Position) int {
	switch p {
	case FetchPos:
		return 0
	case Storage:
		return 2
	}
	return 1
}

func rank(p Position) int {
	switch p {
	case FetchPos:
		return 0
	case Front:
		return 1
	case Default:
		return 2
	case Last:
		return 3
	}
	return 4
}

// Build builds the chain from start for the candidates (in config
// order). Candidates are placed by matching the last output to their
// input, reordering when that makes a match, with fetch and storage
// always first and last; when none fits, built-ins fill the gap towards
// the first candidate they can reach and the placement is tried again,
// until nothing more can be placed. What is left is Unplaced.
func Build(start Format, candidates []Spec, opt BuildOptions) Chain {
	b := &builder{opt: opt, cur: start, chain: Chain{Start: start}}
	for _, c := range candidates {
		b.queue = append(b.queue, queued{Spec: c})
	}
	for g := 0; g <= 2; g++ {
		for guard := 0; guard < 32; guard++ {
			if !b.placeOne(g) {
				break
			}
		}
		// What this group could not place is left over, never dropped.
		b.queue = slices.DeleteFunc(b.queue, func(q queued) bool {
			if group(q.Pos) != g {
				return false
			}
			u := Unplaced{Name: q.Name, Why: fmt.Sprintf("takes %s; the chain has %s and no built-in converts it", formats(q.In), b.cur)}
			if decoder(q.Name) {
				u.Why, u.NotNeeded = fmt.Sprintf("not needed: the chain has %s, not %s", b.cur, formats(q.In)), true
			}
			b.chain.Unplaced = append(b.chain.Unplaced, u)
			return true
		})
	}
	if len(opt.Sink) > 0 && opt.Sink[0] != "identity" && start.Coding() == opt.Sink[0] &&
		b.cur.Coding() == "identity" && len(b.chain.Steps) > 0 {
		// A compressed object that the chain decoded goes to a client
		// that prefers it compressed: compressed again.
		path := b.path(func(f Format) bool { return f.Coding() == opt.Sink[0] })
		for _, s := range path {
			b.place(queued{Spec: s, builtin: true, why: "the client prefers " + opt.Sink[0] + ", as stored"})
		}
	}
	if opt.Sink != nil && !slices.Contains(opt.Sink, b.cur.Coding()) {
		path := b.path(func(f Format) bool { return slices.Contains(opt.Sink, f.Coding()) })
		for _, s := range path {
			b.place(queued{Spec: s, builtin: true, why: "the client takes " + strings.Join(opt.Sink, ", ") + ", not " + b.cur.Coding()})
		}
	}
	return b.chain
}

// placeOne places one candidate of group g (or the built-ins towards
// one); false when none can be.
func (b *builder) placeOne(g int) bool {
	var order []int
	for i, q := range b.queue {
		if group(q.Pos) == g {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(i, j int) int { return rank(b.queue[i].Pos) - rank(b.queue[j].Pos) })
	for _, i := range order {
		if b.queue[i].accepts(b.cur) {
			q := b.queue[i]
			b.queue = slices.Delete(b.queue, i, i+1)
			b.place(q)
			return true
		}
	}
	for _, i := range order {
		q := b.queue[i]
		if decoder(q.Name) {
			// A decoder asked for decodes what comes in that encoding;
			// the host does not encode a body to decode it again.
			continue
		}
		path := b.path(q.accepts)
		if path == nil {
			continue
		}
		for _, s := range path {
			b.place(queued{Spec: s, builtin: true, why: fmt.Sprintf("%s takes %s, the chain has %s", q.Name, formats(q.In), b.cur)})
		}
		return true
	}
	return false
}

// place appends q to the chain and runs its side effect.
func (b *builder) place(q queued) {
	if q.placed != nil {
		q.placed(&q.Spec, b)
	}
	b.chain.Steps = append(b.chain.Steps, Step{Name: q.Name, Label: q.label(), In: b.cur, Out: q.Out, Builtin: q.builtin, Why: q.why})
	b.cur = q.Out
}

// path is the shortest run of built-ins (at most three) from the
// current format to one that ok takes; nil: none, or already there.
func (b *builder) path(ok func(Format) bool) []Spec {
	type node struct {
		f    Format
		path []Spec
	}
	seen := map[Format]bool{b.cur: true}
	frontier := []node{{f: b.cur}}
	for depth := 0; depth < 3; depth++ {
		var next []node
		for _, n := range frontier {
			for _, s := range builtins {
				if !s.accepts(n.f) || seen[s.Out] {
					continue
				}
				p := append(slices.Clone(n.path), s)
				if ok(s.Out) {
					return p
				}
				seen[s.Out] = true
				next = append(next, node{f: s.Out, path: p})
			}
		}
		frontier = next
	}
	return nil
}

func formats(fs []Format) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, "|")
}
