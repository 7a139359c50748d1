// Command testplugin is the edgehost plugin that the plugin runtime's tests
// run as a real subprocess (package testimpl). Its version and misbehaviour
// are set at build time:
//
//	go build -ldflags '-X main.version=v2 -X main.mode=crash' ./plugins/pluginapi/internal/testplugin
//
// Modes: "" (normal), "crash" (exits before serving), "proto2" (speaks
// protocol version 2), "garbage" (prints a bad handshake line).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/edgehost/edgehost/plugins/pluginapi"
	"github.com/edgehost/edgehost/plugins/pluginapi/internal/testimpl"
)

var (
	version = "v1"
	mode    = ""
)

func main() {
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "testplugin: crashing at start as built to")
		os.Exit(7)
	case "garbage":
		fmt.Println("hello, this is not a handshake")
		time.Sleep(200 * time.Millisecond)
		os.Exit(0)
	case "proto2":
		pluginapi.ServeWith(&testimpl.Plugin{Version: version}, pluginapi.ServeOptions{ProtocolVersion: 2})
		return
	}
	pluginapi.Serve(&testimpl.Plugin{Version: version})
}
