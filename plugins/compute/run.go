package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/edgehost/edgehost/plugins/compute/sandbox"
)

// runOnce answers one request with a program through the process backend
// and prints the response: `edgehost-plugin-compute run FILE URL`.
func runOnce(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: edgehost-plugin-compute run FILE URL")
		return 2
	}
	elf, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := hclog.New(&hclog.LoggerOptions{Output: stderr, Level: hclog.Info})
	t, err := sandbox.NewTenant("run", elf, sandbox.Settings{Program: args[0], Backend: "process", Concurrency: 1, Ephemeral: true}, nil, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer t.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := t.Handle(ctx, sandbox.RequestInfo{Method: "GET", URL: args[1], Host: "localhost"}, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%d\n", r.Status)
	if r.ContentType != "" {
		fmt.Fprintf(stdout, "Content-Type: %s\n", r.ContentType)
	}
	for _, h := range r.Headers {
		fmt.Fprintf(stdout, "%s: %s\n", h[0], h[1])
	}
	fmt.Fprintf(stdout, "\n")
	stdout.Write(r.Body)
	return 0
}
