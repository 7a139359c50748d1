package processors

import "slices"

// Side is where a chain runs: between the origin and the cache (fetch)
// or between the cache and the client (deliver).
type Side int

// The two sides of a route.
const (
	FetchSide Side = iota
	DeliverSide
)

// ESI marks text on the fetch side (the page is parsed on delivery);
// with gzip queued at storage it replaces itself with its gzip
// counterpart, so the page is stored compressed as it came (issue 16).
var esiFetch = Spec{Name: "esi", In: []Format{Text}, Out: ESIText, placed: esiWithGzip}

// On delivery ESI expands includes: any text in, text out.
var esiDeliverSpec = Spec{Name: "esi", In: []Format{Text, ESIText, BufferText}, Out: Text}

// regex substitutes on a whole body.
var regexSpec = Spec{Name: "regex", In: []Format{BufferText}, Out: Text}

func esiWithGzip(self *Spec, b *builder) {
	i := slices.IndexFunc(b.queue, func(q queued) bool { return q.Pos == Storage && q.Name == "gzip" })
	if i < 0 {
		return
	}
	b.queue = slices.Delete(b.queue, i, i+1)
	self.Name, self.Label, self.Out = "esi+gzip", "esi+gzip", Gzip
}

// Lookup is the processor that a config names on side: a built-in, esi
// or regex.
func Lookup(name string, side Side) (Spec, bool) {
	switch name {
	case "esi":
		if side == FetchSide {
			return esiFetch, true
		}
		return esiDeliverSpec, true
	case "regex":
		return regexSpec, true
	}
	return Builtin(name)
}

// Names are the processors that a config may ask for.
var Names = []string{"gzip", "gunzip", "brotli", "unbrotli", "buffer", "esi", "regex"}
