package config

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// RequestFields are the attributes of the `request` variable that request-time
// expressions may use. CheckRequestExpr rejects anything else at load.
var RequestFields = map[string]string{
	"method":  "string: GET, HEAD, POST, …",
	"path":    "string: URL path without the query",
	"query":   "map of string: query parameters (first value of each)",
	"headers": "map of string: request headers, lowercased names",
	"host":    "string: Host without port, lowercased",
	"url":     "string: path and query as received",
	"is_sub":  "bool: a self-request or a slicer segment (Varnish is_sub())",
	"is_top":  "bool: a client request (Varnish is_top())",
	"depth":   "number: self-request nesting depth (0 for clients)",
	"remote":  "string: client address",
	"retry":   "bool: a sliced request retried unsliced (slice on_failure = \"retry\")",
}

var (
	baseOnce sync.Once
	baseCtx  *hcl.EvalContext
)

// EvalContext is the base context: functions and `env`, never changed.
// Plugin blocks are decoded in it.
func EvalContext() *hcl.EvalContext { return baseContext() }

// baseContext is built once and never changed: functions and `env`.
func baseContext() *hcl.EvalContext {
	baseOnce.Do(func() {
		env := map[string]cty.Value{}
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				env[k] = cty.StringVal(v)
			}
		}
		envVal := cty.MapValEmpty(cty.String)
		if len(env) > 0 {
			envVal = cty.MapVal(env)
		}
		baseCtx = &hcl.EvalContext{
			Variables: map[string]cty.Value{"env": envVal},
			Functions: map[string]function.Function{
				"lower":     stdlib.LowerFunc,
				"upper":     stdlib.UpperFunc,
				"trimspace": stdlib.TrimSpaceFunc,
				"regex":     stdlib.RegexFunc,
				"regexall":  stdlib.RegexAllFunc,
				"contains":  stdlib.ContainsFunc,
				"strcontains": function.New(&function.Spec{
					Params: []function.Parameter{{Name: "s", Type: cty.String}, {Name: "sub", Type: cty.String}},
					Type:   function.StaticReturnType(cty.Bool),
					Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
						return cty.BoolVal(strings.Contains(args[0].AsString(), args[1].AsString())), nil
					},
				}),
				"startswith": prefixFunc(strings.HasPrefix),
				"endswith":   prefixFunc(strings.HasSuffix),
				"lookup":     stdlib.LookupFunc,
				"length":     stdlib.LengthFunc,
				"can":        tryfunc.CanFunc,
				"try":        tryfunc.TryFunc,
				"tonumber":   stdlib.MakeToFunc(cty.Number),
				"tostring":   stdlib.MakeToFunc(cty.String),
			},
		}
	})
	return baseCtx
}

func prefixFunc(f func(s, p string) bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "s", Type: cty.String}, {Name: "prefix", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(f(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

// CheckRequestExpr verifies at load time that expr names only `request.*`
// fields that exist at request time, `env`, and known functions.
func CheckRequestExpr(expr hcl.Expression) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		switch root {
		case "env", "file": // file.NAME.FIELD: checked by Config.checkFileVars
			continue
		case "request":
			if len(tr) < 2 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incomplete request reference",
					Detail: "use request.FIELD; fields: " + fieldList(), Subject: tr.SourceRange().Ptr()})
				continue
			}
			at, ok := tr[1].(hcl.TraverseAttr)
			if !ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid request reference",
					Detail: "use request.FIELD; fields: " + fieldList(), Subject: tr.SourceRange().Ptr()})
				continue
			}
			if _, known := RequestFields[at.Name]; !known {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown request field",
					Detail: fmt.Sprintf("request has no field %q; fields: %s", at.Name, fieldList()), Subject: tr.SourceRange().Ptr()})
			}
		default:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown variable",
				Detail: fmt.Sprintf("%q is not available in a request condition; use request.FIELD or env.NAME", root), Subject: tr.SourceRange().Ptr()})
		}
	}
	if diags.HasErrors() {
		return diags
	}
	// Evaluate once with unknown request values: catches unknown functions,
	// wrong argument counts and type errors that do not depend on the request.
	ctx := RequestContext(cty.UnknownVal(requestType))
	ctx.Variables["file"] = cty.DynamicVal
	v, d := expr.Value(ctx)
	diags = append(diags, d...)
	if !d.HasErrors() && !v.Type().Equals(cty.Bool) && v.Type() != cty.DynamicPseudoType {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Condition is not a bool",
			Detail: fmt.Sprintf("a condition must be true or false, this one is %s", v.Type().FriendlyName()), Subject: expr.Range().Ptr()})
	}
	return diags
}

var requestType = cty.Object(map[string]cty.Type{
	"method": cty.String, "path": cty.String, "query": cty.Map(cty.String),
	"headers": cty.Map(cty.String), "host": cty.String, "url": cty.String,
	"is_sub": cty.Bool, "is_top": cty.Bool, "depth": cty.Number, "remote": cty.String, "retry": cty.Bool,
})

// RequestContext returns the per-request child of the base context.
func RequestContext(request cty.Value) *hcl.EvalContext {
	ctx := baseContext().NewChild()
	ctx.Variables = map[string]cty.Value{"request": request}
	return ctx
}

// Request is what a request-time expression can see.
type Request struct {
	Method, Path, URL, Host, Remote string
	Query, Headers                  map[string]string
	Depth                           int
	Retry                           bool
	// Files is the `file` variable: the readers' state (file.NAME.FIELD,
	// see FileFields); cty.NilVal when there are none.
	Files cty.Value
}

// Value converts r to the cty object bound to `request`.
func (r *Request) Value() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"method": cty.StringVal(r.Method), "path": cty.StringVal(r.Path),
		"query": stringMap(r.Query), "headers": stringMap(r.Headers),
		"host": cty.StringVal(r.Host), "url": cty.StringVal(r.URL),
		"is_sub": cty.BoolVal(r.Depth > 0), "is_top": cty.BoolVal(r.Depth == 0),
		"depth": cty.NumberIntVal(int64(r.Depth)), "remote": cty.StringVal(r.Remote),
		"retry": cty.BoolVal(r.Retry),
	})
}

// EvalCondition evaluates a route condition; errors count as false and are
// returned so the caller can log them.
func EvalCondition(expr hcl.Expression, r *Request) (bool, error) {
	ctx := RequestContext(r.Value())
	if r.Files != cty.NilVal {
		ctx.Variables["file"] = r.Files
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return false, diags
	}
	if v.IsNull() || !v.IsKnown() || !v.Type().Equals(cty.Bool) {
		return false, fmt.Errorf("condition at %s is not a bool", expr.Range())
	}
	return v.True(), nil
}

func stringMap(m map[string]string) cty.Value {
	if len(m) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	vals := make(map[string]cty.Value, len(m))
	for k, v := range m {
		vals[k] = cty.StringVal(v)
	}
	return cty.MapVal(vals)
}

func fieldList() string {
	var n []string
	for k := range RequestFields {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}
