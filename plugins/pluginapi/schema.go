package pluginapi

import (
	"fmt"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	pluginv1 "github.com/edgehost/edgehost/proto/edgehost/plugin/v1"
)

// Schema describes the settings a plugin accepts inside its
// `plugin "NAME" { ... }` block. The host decodes the block with Spec, so
// an unknown or mistyped setting is an HCL diagnostic pointing at its line.
type Schema struct {
	Attributes []Attribute
	Blocks     []Block
}

// Attribute is one setting.
type Attribute struct {
	Name     string
	Type     cty.Type
	Required bool
	Doc      string
}

// Nesting says how often a block may appear and how it decodes.
type Nesting int

// Nesting modes, as in hcldec.
const (
	NestingSingle Nesting = iota + 1 // at most one; an object, null when absent
	NestingList                      // a list of objects in order
	NestingSet                       // a set of objects
	NestingMap                       // one label each; a map keyed by label
)

// Block is a nested block type.
type Block struct {
	TypeName  string
	Nesting   Nesting
	LabelName string // NestingMap: the label's name, for messages
	Body      *Schema
	MinItems  int
	MaxItems  int
	Doc       string
}

// Spec is the hcldec spec that decodes a block of this schema into a cty
// object value. A nil Schema accepts an empty block only.
func (s *Schema) Spec() hcldec.Spec {
	obj := hcldec.ObjectSpec{}
	if s == nil {
		return obj
	}
	for _, a := range s.Attributes {
		t := a.Type
		if t == cty.NilType {
			t = cty.DynamicPseudoType
		}
		obj[a.Name] = &hcldec.AttrSpec{Name: a.Name, Type: t, Required: a.Required}
	}
	for _, b := range s.Blocks {
		nested := b.Body.Spec()
		switch b.Nesting {
		case NestingList:
			obj[b.TypeName] = &hcldec.BlockListSpec{TypeName: b.TypeName, Nested: nested, MinItems: b.MinItems, MaxItems: b.MaxItems}
		case NestingSet:
			obj[b.TypeName] = &hcldec.BlockSetSpec{TypeName: b.TypeName, Nested: nested, MinItems: b.MinItems, MaxItems: b.MaxItems}
		case NestingMap:
			obj[b.TypeName] = &hcldec.BlockMapSpec{TypeName: b.TypeName, LabelNames: []string{labelName(b)}, Nested: nested}
		default:
			obj[b.TypeName] = &hcldec.BlockSpec{TypeName: b.TypeName, Nested: nested, Required: b.MinItems > 0}
		}
	}
	return obj
}

func labelName(b Block) string {
	if b.LabelName == "" {
		return "name"
	}
	return b.LabelName
}

// ImpliedType is the cty type of a value decoded with Spec.
func (s *Schema) ImpliedType() cty.Type {
	return hcldec.ImpliedType(s.Spec())
}

// schemaToProto converts a schema for the wire.
func schemaToProto(s *Schema) (*pluginv1.Schema, error) {
	if s == nil {
		return nil, nil
	}
	out := &pluginv1.Schema{}
	for _, a := range s.Attributes {
		t := a.Type
		if t == cty.NilType {
			t = cty.DynamicPseudoType
		}
		tj, err := ctyjson.MarshalType(t)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		out.Attributes = append(out.Attributes, &pluginv1.Attribute{
			Name: a.Name, Type: tj, Required: a.Required, Description: a.Doc,
		})
	}
	for _, b := range s.Blocks {
		body, err := schemaToProto(b.Body)
		if err != nil {
			return nil, fmt.Errorf("block %q: %w", b.TypeName, err)
		}
		out.Blocks = append(out.Blocks, &pluginv1.BlockType{
			TypeName: b.TypeName, Nesting: pluginv1.BlockType_Nesting(b.Nesting), LabelName: b.LabelName,
			Body: body, MinItems: uint32(b.MinItems), MaxItems: uint32(b.MaxItems), Description: b.Doc,
		})
	}
	return out, nil
}

// schemaFromProto converts a schema from the wire.
func schemaFromProto(p *pluginv1.Schema) (*Schema, error) {
	if p == nil {
		return nil, nil
	}
	out := &Schema{}
	for _, a := range p.GetAttributes() {
		if a.GetName() == "" {
			return nil, fmt.Errorf("attribute without a name")
		}
		t := cty.DynamicPseudoType
		if len(a.GetType()) > 0 {
			var err error
			if t, err = ctyjson.UnmarshalType(a.GetType()); err != nil {
				return nil, fmt.Errorf("attribute %q: type: %w", a.GetName(), err)
			}
		}
		out.Attributes = append(out.Attributes, Attribute{Name: a.GetName(), Type: t, Required: a.GetRequired(), Doc: a.GetDescription()})
	}
	for _, b := range p.GetBlocks() {
		if b.GetTypeName() == "" {
			return nil, fmt.Errorf("block type without a name")
		}
		body, err := schemaFromProto(b.GetBody())
		if err != nil {
			return nil, fmt.Errorf("block %q: %w", b.GetTypeName(), err)
		}
		n := Nesting(b.GetNesting())
		if n < NestingSingle || n > NestingMap {
			n = NestingSingle
		}
		out.Blocks = append(out.Blocks, Block{
			TypeName: b.GetTypeName(), Nesting: n, LabelName: b.GetLabelName(), Body: body,
			MinItems: int(b.GetMinItems()), MaxItems: int(b.GetMaxItems()), Doc: b.GetDescription(),
		})
	}
	return out, nil
}
