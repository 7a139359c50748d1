package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgehost/edgehost/host/node"
	"github.com/edgehost/edgehost/host/programs"
)

type caller func(method, p string, body io.Reader) (*http.Response, error)

// programCmd runs upload, programs, rollback, tenants and debug (issue 12)
// against the admin API.
func programCmd(cmd string, args []string, asJSON bool, call caller) error {
	switch cmd {
	case "upload":
		if len(args) != 2 {
			return usageError{"upload TENANT FILE"}
		}
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		var v programs.Version
		start := time.Now()
		if err := callJSON(call, "POST", "/tenants/"+url.PathEscape(args[0])+"/program", f, &v); err != nil {
			return fmt.Errorf("upload %s to tenant %s: %w", args[1], args[0], err)
		}
		fmt.Printf("tenant %s: version %d is live (sha256 %s, %d bytes, boot %v, live %v after the upload began)\n",
			args[0], v.Version, v.SHA256, v.Size, time.Duration(v.BootTime), time.Since(start).Round(time.Millisecond))
		return nil
	case "rollback":
		if len(args) < 1 || len(args) > 2 {
			return usageError{"rollback TENANT [VERSION]"}
		}
		q := "/tenants/" + url.PathEscape(args[0]) + "/rollback"
		if len(args) == 2 {
			q += "?version=" + url.QueryEscape(args[1])
		}
		var v programs.Version
		if err := callJSON(call, "POST", q, nil, &v); err != nil {
			return fmt.Errorf("rollback of tenant %s: %w", args[0], err)
		}
		fmt.Printf("tenant %s: version %d is live again (sha256 %s)\n", args[0], v.Version, v.SHA256)
		return nil
	case "programs":
		var tenants []string
		if len(args) > 1 {
			return usageError{"programs [TENANT]"}
		}
		if len(args) == 1 {
			tenants = args
		} else {
			var ts []node.TenantState
			if err := callJSON(call, "GET", "/tenants", nil, &ts); err != nil {
				return err
			}
			for _, t := range ts {
				tenants = append(tenants, t.Name)
			}
		}
		all := map[string][]programs.Version{}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		if !asJSON {
			fmt.Fprintln(tw, "TENANT\tVERSION\tSTATUS\tSHA256\tSIZE\tUPLOADED\tBOOT\tFROM\tNOTE")
		}
		for _, t := range tenants {
			var vs []programs.Version
			if err := callJSON(call, "GET", "/tenants/"+url.PathEscape(t)+"/programs", nil, &vs); err != nil {
				return err
			}
			all[t] = vs
			for _, v := range vs {
				note := v.Error
				if !v.Kept && v.Status != programs.StatusRejected {
					note = strings.TrimSpace("bytes pruned " + note)
				}
				status := v.Status
				if v.Live {
					status = "*" + status
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%.12s\t%d\t%s\t%v\t%s\t%.120s\n", t, v.Version, status, v.SHA256, v.Size,
					v.UploadedAt.Local().Format(time.DateTime), time.Duration(v.BootTime), v.From, note)
			}
		}
		if asJSON {
			return printJSON(all)
		}
		return tw.Flush()
	case "debug":
		if len(args) != 2 {
			return usageError{"debug TENANT URL"}
		}
		resp, err := call("POST", "/tenants/"+url.PathEscape(args[0])+"/debug?url="+url.QueryEscape(args[1]), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		// Streamed: the GDB address first, the answer when the session ends.
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 2<<20)
		var failed error
		for sc.Scan() {
			fmt.Println(sc.Text())
			if msg, ok := strings.CutPrefix(sc.Text(), "error: "); ok {
				failed = errors.New(msg)
			}
		}
		if failed != nil {
			return fmt.Errorf("debug of tenant %s: %w", args[0], failed)
		}
		return sc.Err()
	case "tenants":
		var ts []node.TenantState
		if err := callJSON(call, "GET", "/tenants", nil, &ts); err != nil {
			return err
		}
		if asJSON {
			return printJSON(ts)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tBACKEND\tLIVE\tSLOTS\tQUEUE\tREQUESTS\tFAULTS\tTIMEOUTS\tFULL\tLAST ERROR")
		for _, t := range ts {
			live := "-"
			if t.Live != nil {
				live = fmt.Sprintf("v%d %.12s", t.Live.Version, t.Live.SHA256)
			}
			last := t.LastError
			if t.Error != "" {
				last = "status: " + t.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%.100s\n", t.Name, t.Backend, live, t.Busy, t.Concurrency,
				t.Queued, t.Requests, t.Faults, t.Timeouts, t.Rejected, last)
		}
		tw.Flush()
		for _, t := range ts {
			if t.BackendWhy != "" {
				fmt.Printf("%s: backend %s: %s\n", t.Name, t.Backend, t.BackendWhy)
			}
		}
		return nil
	}
	return nil
}

// callJSON calls the admin API and decodes its JSON answer into out; an
// error status gives the API's error message.
func callJSON(call caller, method, p string, body io.Reader, out any) error {
	resp, err := call(method, p, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// uploader says who uploads, for the version's history.
func uploader() string {
	name := "?"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}
