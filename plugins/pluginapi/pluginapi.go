// Package pluginapi is the contract between the edgehost host and its
// plugins (DESIGN §4, STYLE 2): the go-plugin handshake, the versioned
// plugin sets, the Go interfaces a plugin implements, and the gRPC adapters
// on both sides of the process boundary.
//
// A plugin's main is one call:
//
//	func main() { pluginapi.Serve(&myPlugin{}) }
//
// where myPlugin implements Plugin and any of the feature interfaces
// (File, Slicer, Compute, Processor). Serve registers the gRPC services of
// the features that the value implements and fills Info's capabilities
// and protocol versions in from them, so a plugin cannot claim a service
// it does not serve.
//
// The host starts the plugin with go-plugin (gRPC only, AutoMTLS), takes the
// *Client that the plugin set dispenses, and talks to it through the same
// Go interfaces. Bodies cross as chunked streams (head, chunks, trailer),
// never as one message (STYLE 13).
//
// The calls on the request path (Compute.Handle, Processor.Process,
// File.Read, Slicer.Decide) go over a lean data path instead of gRPC when
// the host offered one at launch (OfferDataPath, Client.UseDataPath) and
// the plugin serves it, which Serve does: Unix socket pairs handed over a
// control socket, one call at a time per connection, hand-framed. It makes
// the hop ~4× shorter and bodies ~8× faster; see datapath.go for why and
// how. Launch, handshake, Info, Configure, Health, Shutdown and the
// File.Watch/Check control calls stay on gRPC.
//
// A plugin exits by itself when its host goes away, even after kill -9 of
// the host: Serve watches a lifeline pipe the host passes (and, without
// one, the parent pid); see lifeline.go.
package pluginapi

import (
	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the version of the edgehost plugin protocol that this
// package speaks (proto/edgehost/plugin/v1). A host and a plugin agree on
// it in the go-plugin handshake; a plugin built for another version is
// refused at start with a clear error.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake of edgehost plugins. The cookie never
// changes: it only tells a plugin binary that an edgehost host started it.
// Protocol versions are negotiated through VersionedPlugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "EDGEHOST_PLUGIN",
	MagicCookieValue: "7d0f7a39c1b24f0e9a6e5b8f3c2d1e04",
}

// PluginKey is the name under which the edgehost plugin is registered in
// the go-plugin plugin set; the host dispenses it by that name.
const PluginKey = "edgehost"

// Feature service names, as listed in Info.Services.
const (
	ServiceFile      = "file"
	ServiceSlicer    = "slicer"
	ServiceCompute   = "compute"
	ServiceProcessor = "processor"
)

// ChunkSize is the largest body chunk sent in one gRPC message.
const ChunkSize = 128 << 10

// ClientPluginSets are the versioned plugin sets of the host side: one set
// per protocol version that the host speaks.
func ClientPluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginKey: &GRPCPlugin{}},
	}
}

// serverPluginSets are the plugin sets of a plugin serving impl under
// protocol version v.
func serverPluginSets(impl Plugin, v, dataPath int) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		v: {PluginKey: &GRPCPlugin{Impl: impl, Version: v, DataPath: dataPath}},
	}
}
