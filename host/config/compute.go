package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/edgehost/edgehost/host/httpcache"
)

// Compute (DESIGN §8): tenants are declared inside a compute plugin's block,
// whose settings the plugin's own schema decodes (STYLE 8); the host reads
// only their names, which plugin serves them and the Host names they
// answer, so that routes can name them (`compute = tenant.NAME`, `chain =
// ["fetch", tenant.a, tenant.b]`) with diagnostics at load.
//
//	plugin "compute" {
//	  tenant "hello" {
//	    program = "bin/programs/hello"
//	    hosts   = ["hello.example"]   # optional: a route "/" for these hosts
//	  }
//	}
//	route "/hello" { compute = tenant.hello }

// Tenant is a tenant block of a compute plugin.
type Tenant struct {
	Name      string
	Plugin    string   // the plugin block that runs it
	Hosts     []string // lowercased; requests for them go to the tenant
	Program   string   // the file the block names ("": uploads only); its first version (issue 12)
	DeclRange hcl.Range
}

// Compute is what a route runs: one tenant, or a chain of stages where
// each stage's response is the next one's request body.
type Compute struct {
	Stages    []Stage
	DeclRange hcl.Range
}

// Stage is one step of a chain: the route's backend ("fetch", first only,
// done by the host without holding a program's slot) or a tenant.
type Stage struct {
	Fetch  bool
	Tenant *Tenant
}

// FetchFirst reports whether the chain starts with the route's backend.
func (c *Compute) FetchFirst() bool { return len(c.Stages) > 0 && c.Stages[0].Fetch }

// tenantBlocks is the part of a plugin block that the host reads.
var tenantBlocks = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "tenant", LabelNames: []string{"name"}}}}

// buildTenants finds the tenant blocks of every plugin block.
func (c *Config) buildTenants(raw *fileSchema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	c.Tenants = map[string]*Tenant{}
	for _, p := range raw.Plugins {
		if p.Remain == nil {
			continue
		}
		content, _, _ := p.Remain.PartialContent(tenantBlocks)
		for _, b := range content.Blocks {
			t := &Tenant{Name: b.Labels[0], Plugin: p.Name, DeclRange: b.DefRange}
			if prev, dup := c.Tenants[t.Name]; dup {
				diags = append(diags, rangeErr(b.DefRange, "Duplicate tenant",
					fmt.Sprintf("tenant %q was already declared at %s", t.Name, prev.DeclRange)))
				continue
			}
			attrs, _ := b.Body.JustAttributes()
			if a := attrs["program"]; a != nil {
				// Decoded by the plugin's schema too; here only to store
				// the file as the tenant's first version.
				_ = gohcl.DecodeExpression(a.Expr, baseContext(), &t.Program)
			}
			if a := attrs["hosts"]; a != nil {
				var hosts []string
				if d := gohcl.DecodeExpression(a.Expr, baseContext(), &hosts); d.HasErrors() {
					diags = append(diags, attrErr(a, "Invalid tenant hosts", `use a list of host names, e.g. ["app.example", "*.app.example"]`))
				}
				for _, h := range hosts {
					t.Hosts = append(t.Hosts, strings.ToLower(h))
				}
			}
			c.Tenants[t.Name] = t
		}
	}
	return diags
}

// tenantRoutes are the routes that a tenant's hosts imply: "/" for those
// Host names, answered by the tenant.
func (c *Config) tenantRoutes() []*Route {
	var out []*Route
	for _, name := range c.tenantNameList() {
		t := c.Tenants[name]
		if len(t.Hosts) == 0 {
			continue
		}
		out = append(out, &Route{Prefix: "/", Hosts: t.Hosts, Compute: &Compute{Stages: []Stage{{Tenant: t}}, DeclRange: t.DeclRange},
			Policy: httpcache.Policy{HeuristicMax: c.Cache.HeuristicMax, Targeted: c.Cache.TargetedFields},
			Index:  -1, DeclRange: t.DeclRange})
	}
	return out
}

// buildCompute reads a route's `compute` or `chain` attribute.
func (c *Config) buildCompute(r *routeSchema, rt *Route) hcl.Diagnostics {
	switch {
	case r.Compute != nil && r.Chain != nil:
		return hcl.Diagnostics{attrErr(r.Chain, "Conflicting route", "a route runs one tenant (compute) or a chain, not both")}
	case r.Compute != nil:
		t, d := c.tenantRef(r.Compute, r.Compute.Expr)
		if d.HasErrors() {
			return d
		}
		rt.Compute = &Compute{Stages: []Stage{{Tenant: t}}, DeclRange: r.Compute.Range}
	case r.Chain != nil:
		exprs, d := hcl.ExprList(r.Chain.Expr)
		if d.HasErrors() || len(exprs) == 0 {
			return hcl.Diagnostics{attrErr(r.Chain, "Invalid chain", `use a list of stages: ["fetch", tenant.a, tenant.b] ("fetch", the route's backend, may only come first)`)}
		}
		cp := &Compute{DeclRange: r.Chain.Range}
		var diags hcl.Diagnostics
		for i, e := range exprs {
			var s string
			if !gohcl.DecodeExpression(e, baseContext(), &s).HasErrors() {
				if s != "fetch" || i != 0 {
					diags = append(diags, exprErr(r.Chain, e, "Invalid chain stage", `a stage is tenant.NAME, or "fetch" as the first stage`))
				}
				cp.Stages = append(cp.Stages, Stage{Fetch: true})
				continue
			}
			t, d := c.tenantRef(r.Chain, e)
			diags = append(diags, d...)
			cp.Stages = append(cp.Stages, Stage{Tenant: t})
		}
		if len(cp.Stages) == 1 && cp.FetchFirst() {
			diags = append(diags, attrErr(r.Chain, "Invalid chain", `a chain needs at least one tenant after "fetch"`))
		}
		if diags.HasErrors() {
			return diags
		}
		rt.Compute = cp
	default:
		return nil
	}
	switch {
	case rt.Compute.FetchFirst() && r.Backend == nil:
		return hcl.Diagnostics{attrErr(r.Chain, "Chain without a backend", `a chain that starts with "fetch" fetches from the route's backend: add backend = backend.NAME`)}
	case !rt.Compute.FetchFirst() && r.Backend != nil:
		return hcl.Diagnostics{attrErr(r.Backend, "Conflicting route", "a route answered by a tenant has no backend (a chain may start with \"fetch\" to use one)")}
	case r.Respond != nil || r.Static != nil || r.Slice != nil:
		return hcl.Diagnostics{rangeErr(r.DeclRange, "Conflicting route", "a compute route has no respond, static or slice block")}
	}
	return nil
}

// tenantRef resolves `tenant.NAME` in attribute a.
func (c *Config) tenantRef(a *hcl.Attribute, e hcl.Expression) (*Tenant, hcl.Diagnostics) {
	if tr, d := hcl.AbsTraversalForExpr(e); !d.HasErrors() && len(tr) == 2 && tr.RootName() == "tenant" {
		if at, ok := tr[1].(hcl.TraverseAttr); ok {
			if t := c.Tenants[at.Name]; t != nil {
				return t, nil
			}
			return nil, hcl.Diagnostics{exprErr(a, e, "Unknown tenant",
				fmt.Sprintf("no tenant %q is declared in a compute plugin's block; declared: %s", at.Name, c.tenantNames()))}
		}
	}
	return nil, hcl.Diagnostics{exprErr(a, e, "Invalid tenant reference", fmt.Sprintf("use tenant.NAME with a declared tenant (%s)", c.tenantNames()))}
}

func (c *Config) tenantNameList() []string {
	var n []string
	for k := range c.Tenants {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func (c *Config) tenantNames() string {
	if len(c.Tenants) == 0 {
		return `none; declare one with plugin "compute" { tenant "NAME" { program = "…" } }`
	}
	return strings.Join(c.tenantNameList(), ", ")
}

// exprErr is attrErr pointing at one expression inside the attribute.
func exprErr(a *hcl.Attribute, e hcl.Expression, summary, detail string) *hcl.Diagnostic {
	d := attrErr(a, summary, detail)
	d.Subject = e.Range().Ptr()
	return d
}
