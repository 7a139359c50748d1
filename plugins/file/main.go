// Command edgehost-plugin-file is edgehost's file plugin (DESIGN §7): named
// readers of files, mapped and checked in the background, and static roots
// read on cache misses. The logic lives in package reader.
package main

import (
	"github.com/edgehost/edgehost/plugins/file/reader"
	"github.com/edgehost/edgehost/plugins/pluginapi"
)

var version = "dev"

func main() { pluginapi.Serve(&reader.Plugin{Version: version}) }
