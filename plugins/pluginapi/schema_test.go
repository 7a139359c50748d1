package pluginapi

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

var testSchema = &Schema{
	Attributes: []Attribute{
		{Name: "s", Type: cty.String, Required: true},
		{Name: "n", Type: cty.Number},
		{Name: "m", Type: cty.Map(cty.Bool)},
		{Name: "any"},
	},
	Blocks: []Block{
		{TypeName: "one", Nesting: NestingSingle, Body: &Schema{Attributes: []Attribute{{Name: "x", Type: cty.String}}}},
		{TypeName: "item", Nesting: NestingList, MaxItems: 2, Body: &Schema{Attributes: []Attribute{{Name: "x", Type: cty.Number}}}},
		{TypeName: "tag", Nesting: NestingSet, Body: &Schema{Attributes: []Attribute{{Name: "x", Type: cty.String}}}},
		{TypeName: "reader", Nesting: NestingMap, LabelName: "name", Body: &Schema{Attributes: []Attribute{{Name: "path", Type: cty.String, Required: true}}}},
	},
}

func TestSchemaRoundTripAndDecode(t *testing.T) {
	p, err := schemaToProto(testSchema)
	if err != nil {
		t.Fatal(err)
	}
	back, err := schemaFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := back.ImpliedType(), testSchema.ImpliedType(); !got.Equals(want) {
		t.Fatalf("implied type after the wire = %#v, want %#v", got, want)
	}
	src := `
s = "v"
m = { a = true }
any = [1, "x"]
one { x = "y" }
item { x = 1 }
item { x = 2 }
tag { x = "t" }
reader "index" { path = "/srv/index.html" }
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	v, diags := hcldec.Decode(f.Body, back.Spec(), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := v.GetAttr("reader").Index(cty.StringVal("index")).GetAttr("path").AsString(); got != "/srv/index.html" {
		t.Errorf("reader path = %q", got)
	}
	if got := v.GetAttr("item").LengthInt(); got != 2 {
		t.Errorf("items = %d", got)
	}
	// The value crosses the wire and comes back equal.
	val, typ, err := encodeConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeConfig(val, typ)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RawEquals(v) {
		t.Errorf("config after the wire = %#v, want %#v", got, v)
	}
	// Too many list items is a diagnostic.
	f, _ = hclsyntax.ParseConfig([]byte("s = \"v\"\nitem {}\nitem {}\nitem {}\n"), "t.hcl", hcl.InitialPos)
	if _, diags := hcldec.Decode(f.Body, back.Spec(), nil); !diags.HasErrors() {
		t.Errorf("three items accepted, max is 2")
	}
}

// FuzzSchemaFromProto feeds arbitrary wire bytes as a plugin's schema: the
// host must reject or accept them, never panic, and an accepted schema
// must build a spec.
func FuzzSchemaFromProto(f *testing.F) {
	p, _ := schemaToProto(testSchema)
	seed, _ := proto.Marshal(p)
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p pluginv1.Schema
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		s, err := schemaFromProto(&p)
		if err != nil {
			return
		}
		_ = s.Spec()
		_ = s.ImpliedType()
	})
}

// FuzzDecodeConfig feeds arbitrary configuration bytes to the plugin side.
func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(`{"s":"v"}`), []byte(`["object",{"s":"string"}]`))
	f.Add([]byte(`[1,2]`), []byte(`["list","number"]`))
	f.Fuzz(func(t *testing.T, val, typ []byte) {
		v, err := decodeConfig(val, typ)
		if err != nil {
			return
		}
		if _, _, err := encodeConfig(v); err != nil && v.IsWhollyKnown() && !v.IsNull() {
			t.Errorf("decoded value does not encode again: %v", err)
		}
	})
}
