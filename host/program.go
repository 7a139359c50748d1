package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// cmdProgram is `edgehost program run FILE URL`: one request answered by a
// compute program through the process backend, without a proxy (a dev
// loop). The compute plugin binary does the work; it is looked for beside
// this binary, then in PATH.
func cmdProgram(ctx context.Context, args []string) error {
	if len(args) != 3 || args[0] != "run" {
		return usageError{"usage: edgehost program run FILE URL"}
	}
	bin := "edgehost-plugin-compute"
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), bin); fileExists(p) {
			bin = p
		}
	}
	cmd := exec.CommandContext(ctx, bin, "run", args[1], args[2])
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return usageError{} // the plugin said why
		}
		return err
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
