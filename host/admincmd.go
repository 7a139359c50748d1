package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/node"
)

// cmdAdmin runs the commands that talk to a running edgehost's admin API.
func cmdAdmin(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	path := fs.String("config", "config.hcl", "config file of the running edgehost")
	asJSON := fs.Bool("json", false, "programs, tenants: print the admin API's JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{}
	}
	call, err := adminClient(ctx, *path)
	if err != nil {
		return err
	}
	simple := func(method, p string, body io.Reader) error {
		resp, err := call(method, p, body)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		os.Stdout.Write(b)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	arg := strings.Join(fs.Args(), " ")
	switch cmd {
	case "reload":
		return simple("POST", "/reload", nil)
	case "purge":
		if arg == "" {
			return usageError{"purge URL"}
		}
		return simple("POST", "/purge?url="+url.QueryEscape(arg), nil)
	case "purge-tag":
		if arg == "" {
			return usageError{"purge-tag TAG"}
		}
		return simple("POST", "/purge-tag?tag="+url.QueryEscape(arg), nil)
	case "ban":
		if arg == "" {
			return usageError{`ban 'req.url ~ "^/img/"'`}
		}
		return simple("POST", "/ban", strings.NewReader(arg))
	case "plugins":
		return simple("GET", "/plugins", nil)
	case "file":
		switch a := fs.Args(); {
		case len(a) == 2 && a[0] == "check":
			return simple("POST", "/files/"+url.PathEscape(a[1])+"/check", nil)
		case len(a) == 0 || (len(a) == 1 && a[0] == "list"):
			return simple("GET", "/files", nil)
		}
		return usageError{"file check NAME | file list"}
	case "stat":
		return stat(ctx, call)
	case "upload", "programs", "rollback", "tenants", "debug":
		return programCmd(cmd, fs.Args(), *asJSON, call)
	}
	return nil
}

// adminClient returns a function that calls the admin API of the edgehost
// running with the config at path (listen.admin, admin.token).
func adminClient(ctx context.Context, path string) (func(method, p string, body io.Reader) (*http.Response, error), error) {
	cfg, err := node.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	base := "http://" + cfg.Listen.Admin
	return func(method, p string, body io.Reader) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+p, body)
		if err != nil {
			return nil, err
		}
		if cfg.Admin.Token != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
		}
		if f, ok := body.(*os.File); ok {
			// An upload is streamed with its length, so that one over the
			// limit is refused before it is sent.
			if st, err := f.Stat(); err == nil {
				req.ContentLength = st.Size()
			}
			req.Header.Set("Edgehost-Uploader", uploader())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("is edgehost running? %w", err)
		}
		return resp, nil
	}, nil
}

// stat prints the main counters every second with their rate.
func stat(ctx context.Context, call func(method, p string, body io.Reader) (*http.Response, error)) error {
	keys := []string{"edgehost_requests_total", "edgehost_cache_hits_total", "edgehost_cache_misses_total",
		"edgehost_cache_passes_total", "edgehost_origin_fetches_total", "edgehost_origin_errors_total",
		"edgehost_memory_objects", "edgehost_memory_bytes", "edgehost_disk_objects", "edgehost_connections_active"}
	prev := map[string]float64{}
	for i := 0; ; i++ {
		resp, err := call("GET", "/metrics", nil)
		if err != nil {
			return err
		}
		cur := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var name string
			var v float64
			if strings.HasPrefix(sc.Text(), "#") {
				continue
			}
			if _, err := fmt.Sscanf(sc.Text(), "%s %g", &name, &v); err == nil {
				cur[name] = v
			}
		}
		resp.Body.Close()
		fmt.Printf("\n%s\n", time.Now().Format("15:04:05"))
		sort.Strings(keys)
		for _, k := range keys {
			rate := ""
			if i > 0 && strings.HasSuffix(k, "_total") {
				rate = fmt.Sprintf("%8.0f/s", cur[k]-prev[k])
			}
			fmt.Printf("  %-40s %14.0f %s\n", strings.TrimPrefix(k, "edgehost_"), cur[k], rate)
		}
		prev = cur
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
