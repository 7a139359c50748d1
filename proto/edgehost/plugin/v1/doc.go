// Package pluginv1 is the generated Go code of the edgehost plugin
// protocol, version 1 (the .proto files beside it; `make proto`
// regenerates it). Host and plugins do not use it directly but through
// the adapters of plugins/pluginapi.
package pluginv1
