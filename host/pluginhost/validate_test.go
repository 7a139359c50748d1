package pluginhost

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Validate refuses what Load would refuse and leaves nothing running
// (issue 14 item 8).
func TestValidate(t *testing.T) {
	env := newManager(t)
	bad := parseSpec(t, "pinned", bins.v1, `greeting = "hi"`)
	bad.SHA256 = strings.Repeat("0", 64)
	tests := []struct {
		name    string
		spec    Spec
		summary string // "" = valid
	}{
		{"ok", parseSpec(t, "ok", bins.v1, `greeting = "hi"`), ""},
		{"missing binary", parseSpec(t, "nosuch", filepath.Join(bins.dir, "edgehost-plugin-nosuch"), ``), "Cannot read plugin binary"},
		{"digest", bad, "Plugin binary checksum mismatch"},
		{"unknown setting", parseSpec(t, "extra", bins.v1, `greeting = "hi"
nonsense = 1`), "Unsupported argument"},
		{"not a plugin", parseSpec(t, "script", bins.script, ``), "Plugin failed to start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := env.m.Validate(context.Background(), []Spec{tt.spec})
			switch {
			case tt.summary == "" && diags.HasErrors():
				t.Fatalf("valid spec refused: %v", diags)
			case tt.summary != "" && (!diags.HasErrors() || diags[0].Summary != tt.summary):
				t.Fatalf("got %v, want %q", diags, tt.summary)
			case tt.summary != "" && diags[0].Subject == nil:
				t.Fatalf("%q has no source range", diags[0].Summary)
			}
		})
	}
	if st := env.m.Status(); len(st) != 0 {
		t.Errorf("Validate left plugins managed: %+v", st)
	}
}
