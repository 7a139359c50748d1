package node

import (
	"context"

	"github.com/edgehost/edgehost/host/admin"
)

// live is the status page's sampler (admin.Live) with the node's
// inventory: backends and their health, plugins, file readers, tenants.
// It runs as long as the admin listener (serve starts and closes it).
func (n *node) live() *admin.Live {
	return admin.NewLive(admin.LiveOptions{
		Metrics: n.metrics,
		TxLog:   n.txlog,
		Inventory: func(ctx context.Context) map[string]any {
			return map[string]any{
				"backends": n.srv.Backends(),
				"plugins":  n.plugins.Status(),
				"files":    n.files.Files(),
				"tenants":  n.tenantStates(ctx),
			}
		},
	})
}
