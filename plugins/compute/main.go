// Command edgehost-plugin-compute is edgehost's compute plugin (DESIGN §8):
// tenants' programs, static x86-64 ELF binaries written against the guest
// SDK (sdk/edgehost.h), answer requests in KVM virtual machines or in
// sandboxed processes. The engine is package sandbox.
//
// The binary has two more faces: re-executed with EDGEHOST_COMPUTE_STUB
// set it is the stub that locks a program's process down and becomes the
// program (sandbox/stub.go); and
//
//	edgehost-plugin-compute run FILE URL
//
// answers one request with a program through the process backend and
// prints the response, without a proxy (a dev loop).
package main

import (
	"os"

	"github.com/edgehost/edgehost/plugins/compute/sandbox"
	"github.com/edgehost/edgehost/plugins/pluginapi"
)

var version = "dev"

func main() {
	if sandbox.IsStub() {
		sandbox.StubMain()
	}
	if len(os.Args) > 1 && os.Args[1] == "run" {
		os.Exit(runOnce(os.Args[2:], os.Stdout, os.Stderr))
	}
	pluginapi.Serve(&Plugin{Version: version})
}
