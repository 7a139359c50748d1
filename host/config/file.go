package config

// The file feature's blocks (DESIGN §7, issue 4):
//
//	file "NAME" {                 # a named reader, served by a file plugin
//	  path         = "errors/503.html"   # relative to the config file
//	  ttl          = "1h"                # background check interval (1m)
//	  sha256       = true                # also hash the contents (false)
//	  max_size     = "1MiB"              # larger files are an error (64MiB)
//	  content_type = "text/html"         # default: from the extension
//	  plugin       = "file"              # the plugin block serving it ("file")
//	}
//	error_page {                  # replaces the built-in error page
//	  status       = "5xx"               # "503", "5xx", 404, or a list of them
//	  file         = file.NAME
//	  content_type = "…"                 # default: the reader's
//	}
//	route "/logo.svg" { respond { status = 200  file = file.logo } }
//	route "/static/"  { static { root = "./www"  ttl = "10s"  index = "index.html" } }
//
// How the readers reach the plugin: the plugin declares `reader "NAME"`
// and `static "NAME"` blocks in its schema (plugins/file/reader). The
// loader writes one such block per `file` block and per route's `static`
// block, with absolute paths and parsed values, and merges them into the
// body of the plugin block they name (hcl.MergeBodies), so the plugin
// manager decodes and sends them with the plugin's own settings: no side
// channel, and a reload that changes a file block swaps the plugin with
// the new readers like any other plugin setting.

import (
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Defaults of file readers.
const (
	DefaultFileTTL     = time.Minute
	DefaultFileMaxSize = 64 << 20
	DefaultFilePlugin  = "file"
	DefaultStaticIndex = "index.html"
)

// FileFields are the attributes of `file.NAME` in request-time
// expressions (route conditions), as the host's reader table holds them.
var FileFields = map[string]string{
	"contents": "string: the contents (UTF-8 files up to 64 KiB; \"\" otherwise)",
	"mtime":    "number: modification time, unix seconds",
	"size":     "number: size in bytes",
	"id":       "string: digest of the file's identity (device, inode, size, mtime)",
	"sha256":   "string: SHA-256 of the contents, when the reader has sha256 = true",
	"error":    "bool: the last check failed",
	"errmsg":   "string: why the last check failed",
	"deleted":  "bool: the file is gone; the last contents are still served",
}

// File is a `file "NAME"` block: a named reader of one file.
type File struct {
	Name        string
	Path        string // absolute
	TTL         time.Duration
	SHA256      bool
	MaxSize     int64
	ContentType string // never empty: the block's, else from the extension
	Plugin      string
	DeclRange   hcl.Range
}

// ErrorPage is an `error_page` block: the statuses it replaces the
// built-in error page for, and the reader it answers with.
type ErrorPage struct {
	Statuses    []StatusRange
	File        string
	ContentType string // "" = the reader's
	DeclRange   hcl.Range
}

// StatusRange is an inclusive range of statuses ("5xx" = 500..599).
type StatusRange struct{ Lo, Hi int }

// Matches reports whether the page replaces the error page of status.
func (e *ErrorPage) Matches(status int) bool {
	for _, r := range e.Statuses {
		if status >= r.Lo && status <= r.Hi {
			return true
		}
	}
	return false
}

// Static is a route's `static` block: a directory served through the file
// plugin, files read on a cache miss.
type Static struct {
	// Name is the static root's name in the plugin ("route" and the
	// route's declaration index); the plugin's reader names of its files
	// are "NAME/PATH".
	Name    string
	Root    string // absolute
	Plugin  string
	TTL     time.Duration
	SHA256  bool
	MaxSize int64
	Index   string // file served for a path ending in "/"
}

type fileBlockSchema struct {
	Name             string    `hcl:"name,label"`
	Path             string    `hcl:"path"`
	PathRange        hcl.Range `hcl:"path,attr_value_range"`
	TTL              string    `hcl:"ttl,optional"`
	TTLRange         hcl.Range `hcl:"ttl,attr_value_range"`
	SHA256           bool      `hcl:"sha256,optional"`
	MaxSize          string    `hcl:"max_size,optional"`
	MaxSizeRange     hcl.Range `hcl:"max_size,attr_value_range"`
	ContentType      string    `hcl:"content_type,optional"`
	ContentTypeRange hcl.Range `hcl:"content_type,attr_value_range"`
	Plugin           string    `hcl:"plugin,optional"`
	PluginRange      hcl.Range `hcl:"plugin,attr_value_range"`
	DeclRange        hcl.Range `hcl:",def_range"`
}

type errorPageSchema struct {
	Status      *hcl.Attribute `hcl:"status"`
	File        *hcl.Attribute `hcl:"file"`
	ContentType string         `hcl:"content_type,optional"`
	DeclRange   hcl.Range      `hcl:",def_range"`
}

type staticSchema struct {
	Root         string    `hcl:"root"`
	RootRange    hcl.Range `hcl:"root,attr_value_range"`
	TTL          string    `hcl:"ttl,optional"`
	TTLRange     hcl.Range `hcl:"ttl,attr_value_range"`
	SHA256       bool      `hcl:"sha256,optional"`
	MaxSize      string    `hcl:"max_size,optional"`
	MaxSizeRange hcl.Range `hcl:"max_size,attr_value_range"`
	Index        string    `hcl:"index,optional"`
	Plugin       string    `hcl:"plugin,optional"`
	PluginRange  hcl.Range `hcl:"plugin,attr_value_range"`
	DeclRange    hcl.Range `hcl:",def_range"`
}

// buildFiles builds the file blocks and the error pages. Problems with a
// file itself (missing, a directory, too large, unreadable) are warnings:
// the host starts and the reader reports the error at run time.
func (c *Config) buildFiles(raw *fileSchema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	c.Files = map[string]*File{}
	for _, b := range raw.Files {
		f := &File{Name: b.Name, Path: c.resolve(b.Path), TTL: DefaultFileTTL, SHA256: b.SHA256,
			MaxSize: DefaultFileMaxSize, Plugin: or(b.Plugin, DefaultFilePlugin), DeclRange: b.DeclRange}
		if prev, dup := c.Files[b.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate file",
				Detail: fmt.Sprintf("file %q was already declared at %s", b.Name, prev.DeclRange), Subject: b.DeclRange.Ptr()})
			continue
		}
		if !hclsyntax.ValidIdentifier(b.Name) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid file name",
				Detail: fmt.Sprintf("%q: a file's name is an identifier (letters, digits, _ and -), as it is referenced as file.NAME", b.Name), Subject: b.DeclRange.Ptr()})
			continue
		}
		diags = append(diags, durAttr(b.TTLRange, b.TTL, &f.TTL)...)
		diags = append(diags, sizeAttr(b.MaxSizeRange, b.MaxSize, &f.MaxSize)...)
		if f.TTL <= 0 {
			diags = append(diags, rangeErr(b.TTLRange, "Invalid ttl", "a reader's ttl must be positive"))
		}
		f.ContentType = b.ContentType
		if f.ContentType == "" {
			f.ContentType = ContentTypeFor(f.Path)
		} else if _, _, err := mime.ParseMediaType(f.ContentType); err != nil {
			diags = append(diags, rangeErr(b.ContentTypeRange, "Invalid content_type", err.Error()))
		}
		diags = append(diags, checkReaderFile(f, b.PathRange)...)
		c.Files[b.Name] = f
	}
	for _, e := range raw.ErrorPages {
		ep := &ErrorPage{ContentType: e.ContentType, DeclRange: e.DeclRange}
		rs, d := statusRanges(e.Status)
		diags = append(diags, d...)
		ep.Statuses = rs
		name, d := c.fileRef(e.File)
		diags = append(diags, d...)
		ep.File = name
		if ep.ContentType != "" {
			if _, _, err := mime.ParseMediaType(ep.ContentType); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid content_type", Detail: err.Error(), Subject: e.DeclRange.Ptr()})
			}
		}
		c.ErrorPages = append(c.ErrorPages, ep)
	}
	return diags
}

// checkReaderFile reports, as warnings, what will make the reader fail.
func checkReaderFile(f *File, r hcl.Range) hcl.Diagnostics {
	warn := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "File reader will report an error",
			Detail:  fmt.Sprintf("file %q: %s; edgehost starts anyway, the reader reports error = true, and routes using it answer with the built-in error page until the file is fixed", f.Name, detail),
			Subject: r.Ptr()}}
	}
	fi, err := os.Stat(f.Path)
	switch {
	case err != nil:
		return warn(err.Error())
	case fi.IsDir():
		return warn(f.Path + " is a directory")
	case !fi.Mode().IsRegular():
		return warn(f.Path + " is not a regular file")
	case fi.Size() > f.MaxSize:
		return warn(fmt.Sprintf("%s is %d bytes, more than max_size (%d bytes)", f.Path, fi.Size(), f.MaxSize))
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return warn(err.Error())
	}
	fh.Close()
	return nil
}

// buildRouteFile handles a route's `respond { file = … }` and `static`.
func (c *Config) buildRouteFile(rt *Route, r *routeSchema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if r.Respond != nil && r.Respond.File != nil && rt.Respond != nil {
		name, d := c.fileRef(r.Respond.File)
		diags = append(diags, d...)
		rt.Respond.File = name
		if r.Respond.Body != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Conflicting respond",
				Detail: "a respond block answers with a body or with a file, not both", Subject: r.Respond.File.Range.Ptr()})
		}
	}
	if s := r.Static; s != nil {
		st := &Static{Name: "route" + strconv.Itoa(rt.Index), Root: c.resolve(s.Root), Plugin: or(s.Plugin, DefaultFilePlugin),
			TTL: DefaultFileTTL, SHA256: s.SHA256, MaxSize: DefaultFileMaxSize, Index: or(s.Index, DefaultStaticIndex)}
		diags = append(diags, durAttr(s.TTLRange, s.TTL, &st.TTL)...)
		diags = append(diags, sizeAttr(s.MaxSizeRange, s.MaxSize, &st.MaxSize)...)
		if fi, err := os.Stat(st.Root); err != nil || !fi.IsDir() {
			why := st.Root + " is not a directory"
			if err != nil {
				why = err.Error()
			}
			diags = append(diags, rangeErr(s.RootRange, "Invalid static root", why))
		}
		if strings.Contains(st.Index, "/") {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid index", Detail: "index is a file name without \"/\"", Subject: s.DeclRange.Ptr()})
		}
		if r.Respond != nil || r.Backend != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Conflicting route",
				Detail: "a static route serves its directory; it has no backend and no respond block", Subject: s.DeclRange.Ptr()})
		}
		rt.Static = st
	}
	return diags
}

// bindFiles runs once the plugins and routes are built: it checks that
// each file and static root names a declared plugin, merges their blocks
// into that plugin's body, and checks `file.NAME.FIELD` references in
// route conditions.
func (c *Config) bindFiles(raw *fileSchema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	plugins := map[string]*Plugin{}
	for _, p := range c.Plugins {
		plugins[p.Name] = p
	}
	extra := map[string]*hclsyntax.Body{}
	body := func(plugin string, subject hcl.Range, rng hcl.Range) *hclsyntax.Body {
		if plugins[plugin] == nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No file plugin",
				Detail:  fmt.Sprintf("files are served by the plugin %q; declare it with: plugin %q {}", plugin, plugin),
				Subject: subject.Ptr()})
			return nil
		}
		b := extra[plugin]
		if b == nil {
			b = &hclsyntax.Body{SrcRange: rng, EndRange: rng}
			extra[plugin] = b
		}
		return b
	}
	var names []string
	for n := range c.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := c.Files[n]
		b := body(f.Plugin, f.DeclRange, f.DeclRange)
		if b == nil {
			continue
		}
		b.Blocks = append(b.Blocks, synthBlock("reader", f.Name, f.DeclRange, map[string]cty.Value{
			"path": cty.StringVal(f.Path), "ttl": cty.StringVal(f.TTL.String()), "sha256": cty.BoolVal(f.SHA256),
			"max_size": cty.NumberIntVal(f.MaxSize),
		}))
	}
	for _, rt := range c.Routes {
		if rt.Static == nil {
			continue
		}
		st := rt.Static
		b := body(st.Plugin, rt.DeclRange, rt.DeclRange)
		if b == nil {
			continue
		}
		b.Blocks = append(b.Blocks, synthBlock("static", st.Name, rt.DeclRange, map[string]cty.Value{
			"root": cty.StringVal(st.Root), "ttl": cty.StringVal(st.TTL.String()), "sha256": cty.BoolVal(st.SHA256),
			"max_size": cty.NumberIntVal(st.MaxSize),
		}))
	}
	for _, p := range c.Plugins {
		if b := extra[p.Name]; b != nil {
			if p.Body == nil {
				p.Body = b
			} else {
				p.Body = hcl.MergeBodies([]hcl.Body{p.Body, b})
			}
		}
	}
	for _, rt := range c.Routes {
		if rt.When != nil {
			diags = append(diags, c.checkFileVars(rt.When)...)
		}
	}
	return diags
}

// synthBlock writes `TYPE "LABEL" { k = v … }` as HCL syntax whose ranges
// point at the block it was made from, so that a diagnostic from the
// plugin's decoding points there too.
func synthBlock(typ, label string, rng hcl.Range, attrs map[string]cty.Value) *hclsyntax.Block {
	b := &hclsyntax.Body{Attributes: hclsyntax.Attributes{}, SrcRange: rng, EndRange: rng}
	for k, v := range attrs {
		b.Attributes[k] = &hclsyntax.Attribute{Name: k, Expr: &hclsyntax.LiteralValueExpr{Val: v, SrcRange: rng},
			SrcRange: rng, NameRange: rng, EqualsRange: rng}
	}
	return &hclsyntax.Block{Type: typ, Labels: []string{label}, Body: b,
		TypeRange: rng, LabelRanges: []hcl.Range{rng}, OpenBraceRange: rng, CloseBraceRange: rng}
}

// checkFileVars checks the `file.NAME.FIELD` references of a condition.
func (c *Config) checkFileVars(expr hcl.Expression) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, tr := range expr.Variables() {
		if tr.RootName() != "file" {
			continue
		}
		bad := func(summary, detail string) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: tr.SourceRange().Ptr()})
		}
		if len(tr) < 3 {
			bad("Incomplete file reference", "use file.NAME.FIELD; fields: "+keyList(FileFields))
			continue
		}
		name, ok1 := tr[1].(hcl.TraverseAttr)
		field, ok2 := tr[2].(hcl.TraverseAttr)
		if !ok1 || !ok2 {
			bad("Invalid file reference", "use file.NAME.FIELD; fields: "+keyList(FileFields))
			continue
		}
		if _, ok := c.Files[name.Name]; !ok {
			bad("Unknown file", fmt.Sprintf("no file %q is declared; declared: %s", name.Name, c.fileNames()))
			continue
		}
		if _, ok := FileFields[field.Name]; !ok {
			bad("Unknown file field", fmt.Sprintf("file.%s has no field %q; fields: %s", name.Name, field.Name, keyList(FileFields)))
		}
	}
	return diags
}

// fileRef resolves `file.NAME` to a declared file.
func (c *Config) fileRef(a *hcl.Attribute) (string, hcl.Diagnostics) {
	if a == nil {
		return "", nil
	}
	if tr, d := hcl.AbsTraversalForExpr(a.Expr); !d.HasErrors() && len(tr) == 2 && tr.RootName() == "file" {
		if at, ok := tr[1].(hcl.TraverseAttr); ok {
			if _, ok := c.Files[at.Name]; !ok {
				return "", hcl.Diagnostics{attrErr(a, "Unknown file", fmt.Sprintf("no file %q is declared; declared: %s", at.Name, c.fileNames()))}
			}
			return at.Name, nil
		}
	}
	return "", hcl.Diagnostics{attrErr(a, "Invalid file reference", fmt.Sprintf("use file.NAME with a declared file block (%s)", c.fileNames()))}
}

func (c *Config) fileNames() string {
	var n []string
	for k := range c.Files {
		n = append(n, k)
	}
	if len(n) == 0 {
		return "none"
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// statusRanges decodes an error page's status: "5xx", "503", 503, or a
// list of those.
func statusRanges(a *hcl.Attribute) ([]StatusRange, hcl.Diagnostics) {
	if a == nil {
		return nil, nil
	}
	var list []string
	if d := gohcl.DecodeExpression(a.Expr, baseContext(), &list); d.HasErrors() {
		var one string
		if d := gohcl.DecodeExpression(a.Expr, baseContext(), &one); d.HasErrors() {
			return nil, hcl.Diagnostics{attrErr(a, "Invalid status", `use a status ("503", 503, "5xx") or a list of them`)}
		}
		list = []string{one}
	}
	var out []StatusRange
	for _, s := range list {
		r, ok := parseStatusRange(s)
		if !ok {
			return nil, hcl.Diagnostics{attrErr(a, "Invalid status", fmt.Sprintf("%q: use a status from 400 to 599 (\"503\") or a class (\"4xx\", \"5xx\")", s))}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, hcl.Diagnostics{attrErr(a, "Invalid status", "the list of statuses is empty")}
	}
	return out, nil
}

func parseStatusRange(s string) (StatusRange, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 3 && (s[0] == '4' || s[0] == '5') && s[1:] == "xx" {
		lo := int(s[0]-'0') * 100
		return StatusRange{lo, lo + 99}, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 400 || n > 599 {
		return StatusRange{}, false
	}
	return StatusRange{n, n}, true
}

// ContentTypeFor is the Content-Type of a file by its extension
// (application/octet-stream when unknown).
func ContentTypeFor(path string) string {
	if t := mime.TypeByExtension(filepath.Ext(path)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// resolve makes p absolute against the config file's directory.
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	abs, err := filepath.Abs(filepath.Join(filepath.Dir(c.Path), p))
	if err != nil {
		return filepath.Join(filepath.Dir(c.Path), p)
	}
	return abs
}

func keyList(m map[string]string) string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}
