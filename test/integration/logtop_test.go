package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

// runCLI runs an edgehost command against e with a deadline, so that a
// command that should end by itself and does not fails the test.
func (e *edge) runCLI(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, edgehostBin(), append([]string{args[0], "-config", e.cfg}, args[1:]...)...)
	cmd.Dir = e.dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("edgehost %s did not end within %s; output:\n%s", strings.Join(args, " "), timeout, out.String())
	}
	return out.String(), errb.String(), err
}

// jsonTxs parses `edgehost log -json` output.
func jsonTxs(t *testing.T, out string) []observe.Tx {
	t.Helper()
	var txs []observe.Tx
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var tx observe.Tx
		if err := json.Unmarshal([]byte(line), &tx); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		txs = append(txs, tx)
	}
	return txs
}

func TestLogQueryAndTop(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	for _, p := range []string{"/bytes/1k", "/bytes/1k", "/bytes/2k", "/bytes/2k", "/bytes/2k"} {
		wantStatus(t, e.get(p), 200)
	}
	wantStatus(t, e.get("/status/503"), 503)
	wantStatus(t, e.get("/nope"), 404)

	// 5xx only, printed and ended (-d).
	out, _, err := e.runCLI(10*time.Second, "log", "-d", "-json", "-q", `status >= 500`)
	if err != nil {
		t.Fatalf("log -q: %v", err)
	}
	txs := jsonTxs(t, out)
	if len(txs) != 1 || txs[0].URL != "/status/503" || txs[0].Status != 503 {
		t.Errorf("log -q 'status >= 500': %+v, want the one 503", txs)
	}

	// Following, -n ends the command once that many records came.
	out, _, err = e.runCLI(10*time.Second, "log", "-json", "-n", "2", "-q", `status >= 400 || (hit && url == "/bytes/2k")`)
	if err != nil {
		t.Fatalf("log -n 2: %v", err)
	}
	if txs := jsonTxs(t, out); len(txs) != 2 || txs[0].URL != "/bytes/2k" || !observe.IsHit(&txs[0]) {
		t.Errorf("log -n 2: %+v, want the first two matches (hits of /bytes/2k)", txs)
	}

	// Hits and misses by keyword; durations; regular expressions.
	for _, tc := range []struct {
		q    string
		want int
	}{
		{`hit`, 3},
		{`miss && url ~ "^/bytes/"`, 2},
		{`dur >= 0ns && status == 404`, 1},
		{`url !~ "^/bytes/"`, 2},
	} {
		out, _, err := e.runCLI(10*time.Second, "log", "-d", "-json", "-q", tc.q)
		if err != nil {
			t.Fatalf("log -q %s: %v", tc.q, err)
		}
		if got := len(jsonTxs(t, out)); got != tc.want {
			t.Errorf("log -q %s: %d records, want %d:\n%s", tc.q, got, tc.want, out)
		}
	}

	// -since: an hour back holds them all, a time to come none.
	out, _, _ = e.runCLI(10*time.Second, "log", "-d", "-json", "-since", "1h")
	if got := len(jsonTxs(t, out)); got != 7 {
		t.Errorf("log -since 1h: %d records, want 7", got)
	}
	out, _, _ = e.runCLI(10*time.Second, "log", "-d", "-json", "-since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if out != "" {
		t.Errorf("log -since (in an hour): %q, want nothing", out)
	}

	// The default output stays one line per record, oldest first.
	out, _, _ = e.runCLI(10*time.Second, "log", "-d")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || !strings.Contains(lines[0], "/bytes/1k 200") || !strings.Contains(lines[6], "/nope 404") {
		t.Errorf("log -d:\n%s\nwant 7 lines, /bytes/1k first and /nope last", out)
	}

	// A subrequest whose request is not in the log (-g request): shown
	// under it, indented.
	req, _ := http.NewRequest("GET", "http://self/bytes/1k", nil)
	req.Header.Set("Edgehost-Parent", "zzzz")
	resp, err := e.selfClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	out, _, _ = e.runCLI(10*time.Second, "log", "-d", "-g", "request", "-q", `kind == "self"`)
	if !strings.HasPrefix(out, "  └ ") || !strings.Contains(out, "parent=zzzz") {
		t.Errorf("log -g request -q 'kind == \"self\"':\n%s\nwant the self-request indented under parent zzzz", out)
	}

	// A bad query: the position of the mistake, on the CLI and the API.
	_, stderr, err := e.runCLI(10*time.Second, "log", "-d", "-q", `status >= 500 && route ==`)
	if err == nil || !strings.Contains(stderr, `-q: 1:26: expected a value after "=="`) {
		t.Errorf("bad -q: err %v, stderr %q", err, stderr)
	}
	if r := e.admin("GET", "/log?q="+urlq(`status ===`), ""); r.Status != 400 || !strings.HasPrefix(string(r.Body), "q: 1:") {
		t.Errorf("GET /log with a bad q: %d %q, want 400 and the position", r.Status, r.Body)
	}

	// top -1: one view of the kept records, with a period of an hour so
	// that the counts barely decay however slowly this test runs (a minute's
	// period took 3 requests to 2.49 in a loaded -race run).
	out, _, err = e.runCLI(10*time.Second, "top", "-1", "-json", "-n", "3", "-p", "1h")
	if err != nil {
		t.Fatalf("top -1 -json: %v", err)
	}
	var v observe.TopView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("top -1 -json: %q: %v", out, err)
	}
	if len(v.Requested) != 3 || !strings.HasSuffix(v.Requested[0].URL, "/bytes/2k") || v.Requested[0].Count < 2.9 {
		t.Errorf("top most requested: %+v, want /bytes/2k first (3 requests), 3 rows", v.Requested)
	}
	if len(v.Missed) < 2 || len(v.Slowest) == 0 || v.Records != 7 {
		t.Errorf("top: missed %+v, slowest %+v, records %d; want the misses, durations and the 7 client requests (not the subrequest)", v.Missed, v.Slowest, v.Records)
	}
	out, _, err = e.runCLI(10*time.Second, "top", "-1")
	if err != nil || !strings.Contains(out, "most requested") || !strings.Contains(out, "most missed") ||
		!strings.Contains(out, "slowest") || strings.Contains(out, "\x1b[") {
		t.Errorf("top -1 (not a terminal): %v\n%s\nwant the three lists and no escape codes", err, out)
	}
}

// top follows: a URL requested while it runs appears in a later view.
func TestTopLive(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, baseConfig(o.URL, ""))
	wantStatus(t, e.get("/bytes/1k"), 200)
	cmd := exec.Command(edgehostBin(), "top", "-config", e.cfg, "-json", "-n", "5")
	cmd.Dir = e.dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	views := make(chan observe.TopView, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var v observe.TopView
			if json.Unmarshal(sc.Bytes(), &v) == nil {
				views <- v
			}
		}
		close(views)
	}()
	deadline := time.After(15 * time.Second)
	requested := false
	for {
		select {
		case v, ok := <-views:
			if !ok {
				t.Fatal("top ended")
			}
			if !requested {
				// The first view comes from the kept records.
				if len(v.Requested) != 1 || !strings.HasSuffix(v.Requested[0].URL, "/bytes/1k") {
					t.Fatalf("first view: %+v, want /bytes/1k", v.Requested)
				}
				for range 3 {
					wantStatus(t, e.get("/bytes/4k"), 200)
				}
				requested = true
				continue
			}
			if len(v.Requested) > 0 && strings.HasSuffix(v.Requested[0].URL, "/bytes/4k") {
				// Ctrl-C ends it cleanly.
				cmd.Process.Signal(os.Interrupt)
				if err := cmd.Wait(); err != nil {
					t.Errorf("top after SIGINT: %v", err)
				}
				return
			}
		case <-deadline:
			t.Fatal("no view with /bytes/4k first within 15s")
		}
	}
}

// -g request over real subrequests: a sliced response's segments come under
// the client's request, and a query on the segments selects the whole group.
func TestLogGroupsSegments(t *testing.T) {
	o := startOrigin(t)
	e := newEdge(t, sliceConfig(o.URL, "response", "pass"))
	wantStatus(t, e.get("/big/2621440"), 200) // 3 segments of 1 MiB
	for deadline := time.Now().Add(5 * time.Second); e.metric("edgehost_objects_stored_total") < 3 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	out, _, err := e.runCLI(10*time.Second, "log", "-d", "-json", "-g", "request", "-q", `kind == "segment"`)
	if err != nil {
		t.Fatalf("log -g request: %v", err)
	}
	txs := jsonTxs(t, out)
	if len(txs) < 4 || txs[0].Kind != "client" || txs[0].Parent != 0 || txs[0].URL != "/big/2621440" {
		t.Fatalf("log -g request -q 'kind == \"segment\"': %+v, want the client's request first, then its segments", txs)
	}
	for _, tx := range txs[1:] {
		if tx.Kind != "segment" || tx.Parent != txs[0].ID {
			t.Errorf("record %+v in the group of %s: want a segment of it", tx, txs[0].ID)
		}
	}
	// The same selection in text: the segments indented under the request.
	out, _, _ = e.runCLI(10*time.Second, "log", "-d", "-g", "request", "-q", `kind == "segment"`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(txs) || strings.HasPrefix(lines[0], " ") || !strings.HasPrefix(lines[1], "  └ ") {
		t.Errorf("log -g request (text):\n%s\nwant the request, then %d indented segments", out, len(txs)-1)
	}
	// -g raw: the query selects records, not groups.
	out, _, _ = e.runCLI(10*time.Second, "log", "-d", "-json", "-q", `kind == "segment"`)
	for _, tx := range jsonTxs(t, out) {
		if tx.Kind != "segment" {
			t.Errorf("log -g raw -q 'kind == \"segment\"' printed a %s record", tx.Kind)
		}
	}
}
