package processors

import (
	"strings"
	"testing"
)

var myvfp = Spec{Name: "myvfp", In: []Format{Text}, Out: Text}

// The seed's examples (issue 16) are golden: the chain printed as the
// proposal writes it.
func TestBuildGolden(t *testing.T) {
	keep := BuildOptions{KeepEncoding: true}
	avif := Spec{Name: "avif", In: []Format{"image/jpeg"}, Out: "image/avif"}
	fetchFirst := Spec{Name: "first", In: []Format{Gzip}, Out: Gzip, Pos: FetchPos}
	for _, tc := range []struct {
		name  string
		start Format
		cands []Spec
		opt   BuildOptions
		want  string
	}{
		{"gzip myvfp esi", Gzip, []Spec{myvfp, esiFetch}, keep,
			"beresp(gzip) > gunzip > myvfp > esi+gzip"},
		{"gzip myvfp esi, stored plain", Gzip, []Spec{myvfp, esiFetch}, BuildOptions{},
			"beresp(gzip) > gunzip > myvfp > esi"},
		{"brotli", Br, []Spec{myvfp}, keep,
			"beresp(br) > unbrotli > myvfp > brotli"},
		{"regex on buffertext", Gzip, []Spec{regexSpec}, keep,
			"beresp(gzip) > gunzip > buffer > regex > gzip"},
		{"reorder to match", Gzip, []Spec{myvfp, {Name: "gzcheck", In: []Format{Gzip}, Out: Gzip}}, keep,
			"beresp(gzip) > gzcheck > gunzip > myvfp > gzip"},
		{"fetch position first", Gzip, []Spec{myvfp, fetchFirst}, keep,
			"beresp(gzip) > first > gunzip > myvfp > gzip"},
		{"storage candidate wins over the queued encoder", Gzip, []Spec{myvfp, {Name: "brotli", In: []Format{Text}, Out: Br, Pos: Storage}}, keep,
			"beresp(gzip) > gunzip > myvfp > brotli"},
		{"compress plain text", Text, []Spec{{Name: "gzip", In: []Format{Text}, Out: Gzip}}, keep,
			"beresp(text) > gzip"},
		{"nothing fits: never dropped", Text, []Spec{avif, myvfp}, keep,
			"beresp(text) > myvfp [unplaced: avif]"},
		{"gzip to a client without gzip", Gzip, nil, BuildOptions{Sink: []string{"identity"}},
			"beresp(gzip) > gunzip"},
		{"brotli to a gzip client", Br, nil, BuildOptions{Sink: []string{"gzip", "identity"}},
			"beresp(br) > unbrotli"},
		{"esi on delivery of gzip", Gzip, []Spec{esiDeliverSpec}, BuildOptions{Sink: []string{"gzip", "identity"}},
			"beresp(gzip) > gunzip > esi > gzip"},
		{"esi on delivery of gzip to a plain client", Gzip, []Spec{esiDeliverSpec}, BuildOptions{Sink: []string{"identity"}},
			"beresp(gzip) > gunzip > esi"},
		{"client takes the stored encoding", Gzip, nil, BuildOptions{Sink: []string{"gzip", "identity"}},
			"beresp(gzip)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Build(tc.start, tc.cands, tc.opt).String()
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Every built-in says why it is there; an unplaced candidate says why not.
func TestBuildExplains(t *testing.T) {
	c := Build(Gzip, []Spec{regexSpec}, BuildOptions{KeepEncoding: true})
	out := c.Explain()
	for _, want := range []string{
		"gunzip          gzip → text  (built-in: regex takes buffertext, the chain has gzip)",
		"buffer          text → buffertext  (built-in: regex takes buffertext, the chain has text)",
		"regex           buffertext → text  (asked)",
		"gzip            text → gzip  (built-in: gunzip queues gzip at storage",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	c = Build("image/png", []Spec{myvfp}, BuildOptions{})
	if len(c.Unplaced) != 1 || !strings.Contains(c.Unplaced[0].Why, "takes text; the chain has image/png") {
		t.Errorf("unplaced = %+v", c.Unplaced)
	}
}

func TestDecoderNotNeeded(t *testing.T) {
	gunzip, _ := Builtin("gunzip")
	c := Build(Text, []Spec{gunzip}, BuildOptions{KeepEncoding: true})
	if c.String() != "beresp(text) [unplaced: gunzip]" || len(c.Warnings()) != 0 || !c.Unplaced[0].NotNeeded {
		t.Errorf("got %s %+v", c, c.Unplaced)
	}
}
