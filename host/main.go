// Command edgehost is an HTTP caching reverse proxy whose features run as
// process-isolated plugins. See README.md.
//
//	edgehost run -config config.hcl       serve (foreground, logs to stderr)
//	edgehost validate -config config.hcl  check a config, print every diagnostic
//	edgehost explain URL                  the processor chains built for URL
//	edgehost version
//	edgehost reload | purge URL | ban EXPR | purge-tag TAG | log | top | stat | plugins
//	edgehost demo-origin -listen ADDR     a demo origin to try edgehost with
//	edgehost program run FILE URL         one request through a compute program
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var ue usageError
		if !errors.As(err, &ue) || ue.msg != "" {
			fmt.Fprintln(os.Stderr, "edgehost:", err)
		}
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage: edgehost COMMAND [flags]

commands:
  run -config FILE         serve in the foreground (logs to stderr)
  validate -config FILE    check a config; prints every error with file:line:col
  explain [-config FILE] [-encoding E] [-type T] [-accept-encoding AE] URL
                           the processor chains the host builds for URL
  version                  print the version
  reload                   reload the running edgehost's config (admin API)
  purge URL                purge a URL and all its variants
  ban EXPR                 ban objects matching a Varnish-style expression
  purge-tag TAG            purge objects tagged TAG (Surrogate-Key / xkey)
  log [-q QUERY] [-g request|raw] [-n N] [-since T] [-d] [-json]
                           the transaction log: the kept records, then live (-d: print and exit);
                           -q 'status >= 500 && route == "/api/"' filters (edgehost log -h)
  top [-q QUERY] [-n ROWS] [-1] [-json]
                           live: most requested, most missed and slowest URLs (-1: once)
  stat                     live counters
  plugins                  list plugins and their state
  file check NAME          check a file reader now; prints its new state
  file list                every file reader's state
  upload TENANT FILE       make FILE (a static x86-64 ELF) the tenant's live program
  programs [TENANT]        list the tenants' program versions
  rollback TENANT [VER]    make an earlier version live (default: the previous one)
  tenants                  every tenant: backend, live version, slots, queue, counters
  debug TENANT URL         run GET URL under GDB (allow_debug; prints the gdb target, then the answer)
  demo-origin -listen ADDR run the demo origin
  program run FILE URL     answer one request with a compute program (no proxy)

The admin commands read listen.admin and admin.token from -config (default config.hcl).`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return usageError{}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest)
	case "validate":
		return cmdValidate(rest)
	case "explain":
		return cmdExplain(rest)
	case "version", "-version", "--version":
		fmt.Println("edgehost", version)
		return nil
	case "demo-origin":
		return cmdDemoOrigin(ctx, rest)
	case "program":
		return cmdProgram(ctx, rest)
	case "log":
		return cmdLog(ctx, rest)
	case "top":
		return cmdTop(ctx, rest)
	case "reload", "purge", "ban", "purge-tag", "stat", "plugins", "file",
		"upload", "programs", "rollback", "tenants", "debug":
		return cmdAdmin(ctx, cmd, rest)
	case "help", "-h", "-help", "--help":
		fmt.Println(usage)
		return nil
	}
	fmt.Fprintln(os.Stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}
