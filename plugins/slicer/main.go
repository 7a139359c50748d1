// Command edgehost-plugin-slicer is edgehost's range slicer plugin (DESIGN
// §6): it decides, from headers alone, whether an object is fetched and
// cached as segments. Fetching, caching and stitching stay in the host; no
// body byte crosses this plugin.
package main

import "github.com/edgehost/edgehost/plugins/pluginapi"

var version = "dev"

func main() { pluginapi.Serve(&Plugin{Version: version}) }
