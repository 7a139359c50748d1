package pluginhost

import (
	"context"

	"github.com/hashicorp/hcl/v2"
)

// Validate checks specs the way Load does before it would serve them, and
// keeps nothing running: each plugin's binary is present and matches its
// pinned sha256, it starts, passes the handshake and the Info checks, and
// its block decodes against the settings schema it declares. It does not
// call Configure (a plugin may act on its configuration) and starts no
// supervisor; every plugin it started is stopped before it returns.
// `edgehost validate` calls it so that a config that cannot run does not
// validate (issue 14); give the manager a throwaway StateDir, as pinning
// copies each binary there.
func (m *Manager) Validate(ctx context.Context, specs []Spec) hcl.Diagnostics {
	_, diags := eachSpec(specs, func(s Spec) hcl.Diagnostics { return m.validateOne(ctx, s) })
	return diags
}

func (m *Manager) validateOne(ctx context.Context, s Spec) hcl.Diagnostics {
	inst, _, _, diags := m.launchChecked(ctx, s, m.log.With("plugin", s.Name))
	if inst != nil {
		inst.stop(m.opts.ShutdownGrace)
	}
	return diags
}
