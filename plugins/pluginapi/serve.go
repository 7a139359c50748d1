package pluginapi

import (
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// EnvLogLevel names the environment variable by which the host tells a
// plugin its log level ("trace", "debug", "info", "warn", "error").
const EnvLogLevel = "EDGEHOST_PLUGIN_LOG_LEVEL"

// stderr is the process's real stderr, kept before go-plugin's Serve points
// os.Stderr at a pipe of its own: the host reads hclog JSON lines from the
// real one and folds them into its log.
var stderr = os.Stderr

var logger = hclog.New(&hclog.LoggerOptions{
	Level:      hclog.LevelFromString(strings.TrimSpace(os.Getenv(EnvLogLevel))),
	Output:     stderr,
	JSONFormat: true,
})

// Logger is the logger a plugin logs with: JSON lines on stderr that the
// host folds into its own log under the plugin's name, keeping levels and
// key/value pairs.
func Logger() hclog.Logger { return logger }

// ServeOptions tune ServeWith. Plugins call Serve; the options exist for
// tests.
type ServeOptions struct {
	// ProtocolVersion replaces the protocol version served, to check that
	// a host refuses a plugin built for another version.
	ProtocolVersion int
}

// Serve serves impl as an edgehost plugin and returns when the host stops
// it. It is all that a plugin's main calls. Run directly (not by a host),
// it prints a notice and exits with status 1.
func Serve(impl Plugin) { ServeWith(impl, ServeOptions{}) }

// ServeWith is Serve with options.
func ServeWith(impl Plugin, o ServeOptions) {
	v := o.ProtocolVersion
	if v == 0 {
		v = ProtocolVersion
	}
	hs := Handshake
	hs.ProtocolVersion = uint(v)
	dataPath := 0
	if os.Getenv(hs.MagicCookieKey) == hs.MagicCookieValue {
		watchHost(impl, logger)
		if ctl := dataPathFromEnv(); ctl != nil {
			dataPath = DataPathVersion
			go func() {
				// Ends when the host closes the control socket or goes
				// away; the lifeline ends the process.
				err := newDPServer(impl).serve(ctl)
				logger.Debug("data path closed", "error", err)
			}()
		}
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: serverPluginSets(impl, v, dataPath),
		GRPCServer:       newGRPCServer,
		Logger:           logger,
	})
}
