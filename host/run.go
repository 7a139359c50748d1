package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/edgehost/edgehost/host/demoorigin"
	"github.com/edgehost/edgehost/host/node"
)

func cmdValidate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("config", "config.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return usageError{}
	}
	if err := node.Validate(context.Background(), *path); err != nil {
		return err
	}
	fmt.Printf("%s: ok\n", *path)
	return nil
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "config.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return usageError{}
	}
	return node.Run(ctx, *path, version)
}

func cmdDemoOrigin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo-origin", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:18081", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return usageError{}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: demoorigin.New(log), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("demo origin ready", "listen", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
