package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The status page (issue 17, item 4) in a real headless Chromium against a
// real edgehost with plugins, files and a tenant: it loads without a
// console error, its numbers move under load, it fits a phone's width, and
// its screenshots go to test/out/.

// chromiumPath finds Debian's chromium (make test installs it:
// scripts/chromium.sh). Missing, the test fails; only -short skips it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EDGEHOST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testing.Short() {
		t.Skip("-short: no chromium here (make test installs it with scripts/chromium.sh): the status page is not tested in a browser")
	}
	t.Fatal("chromium not found: run scripts/chromium.sh (make test does) or set EDGEHOST_CHROMIUM")
	return ""
}

// browser starts a headless chromium with a fresh profile and the flags
// that keep it off the network (without them it waits on lookups that
// this machine cannot answer).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// consoleProblems collects what the page reports as errors: console.error
// and console.warn calls, uncaught exceptions, and the browser's own log
// entries of level error (a failed load, a refused Content-Security-Policy).
type consoleProblems struct {
	mu   sync.Mutex
	msgs []string
}

func (c *consoleProblems) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				msg = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				msg = fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if msg != "" {
			c.mu.Lock()
			c.msgs = append(c.msgs, msg)
			c.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
}

func (c *consoleProblems) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// statusPageConfig: the file plugin with two readers and the compute
// plugin with a tenant, so that every table of the page has rows.
func statusPageConfig(t *testing.T, originURL string) string {
	return computeConfig(t, "process", originURL, map[string]string{"hello": "concurrency = 2"}, fileAcceptance+`
route "/hello/" { compute = tenant.hello }
`)
}

func TestStatusPage(t *testing.T) {
	ctx := browser(t)
	o := startOrigin(t)
	e := newFileEdge(t, statusPageConfig(t, o.URL), map[string]string{"errors/503.html": errorPage, "www/logo.svg": logoV1})
	var problems consoleProblems
	problems.listen(t, ctx)

	// Load from several clients while the page is open: hits, misses, a
	// tenant, files and some 5xx from the origin.
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var path string
				switch i % 10 {
				case 0:
					path = fmt.Sprintf("/bytes/2048?miss=%d-%d", w, i)
				case 1:
					path = "/hello/status"
				case 2:
					path = "/logo.svg"
				case 3:
					if i%30 == 3 {
						path = fmt.Sprintf("/status/503?n=%d-%d", w, i)
					} else {
						path = "/bytes/65536"
					}
				default:
					path = fmt.Sprintf("/bytes/16384?hot=%d", i%7)
				}
				if resp, err := client.Get(e.url(path)); err == nil {
					resp.Body.Close()
					sent.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	// The token once in the URL: the page sets its cookie and sends the
	// browser to / (the address bar keeps no token).
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 1000),
		chromedp.Navigate("http://"+e.Admin+"/?token="+e.Token),
		chromedp.WaitVisible("#c-rps"),
	); err != nil {
		t.Fatalf("opening the page: %v\nconsole: %q", err, problems.list())
	}
	where, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if where != "http://"+e.Admin+"/" {
		t.Errorf("after the login the page is at %q, want http://%s/ (no token in the address)", where, e.Admin)
	}

	// numbers reads the page's tiles once the poll has filled them.
	numbers := func() map[string]string {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("v-requests").textContent !== "–"`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("the page shows no numbers: %v\nconsole: %q", err, problems.list())
		}
		out, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => { const o = {}; for (const id of ["v-rps","v-hit","v-p50","v-p99","v-bw","v-requests"]) o[id] = document.getElementById(id).textContent; return o; })()`))
		if err != nil {
			t.Fatalf("reading the page: %v\nconsole: %q", err, problems.list())
		}
		return out
	}
	first := numbers()
	// Points need two samples, latency a subscription that starts at the
	// first poll: give the sampler a few seconds under load.
	deadline := time.Now().Add(20 * time.Second)
	var later map[string]string
	for {
		time.Sleep(1500 * time.Millisecond)
		later = numbers()
		if (later["v-p50"] != "–" && later["v-rps"] != "0" && later["v-hit"] != "–") || time.Now().After(deadline) {
			break
		}
	}
	n1, err1 := strconv.ParseInt(first["v-requests"], 10, 64)
	n2, err2 := strconv.ParseInt(later["v-requests"], 10, 64)
	if err1 != nil || err2 != nil || n2 <= n1 {
		t.Errorf("requests on the page: %q then %q, want a number that grows under load (%d sent)", first["v-requests"], later["v-requests"], sent.Load())
	}
	if later["v-rps"] == "–" || later["v-rps"] == "0" {
		t.Errorf("req/s under load: %q", later["v-rps"])
	}
	if !strings.HasSuffix(later["v-p50"], " ms") || !strings.HasSuffix(later["v-p99"], " ms") {
		t.Errorf("latency p50 %q p99 %q, want milliseconds", later["v-p50"], later["v-p99"])
	}
	if !strings.HasSuffix(later["v-hit"], " %") || !strings.HasSuffix(later["v-bw"], "B/s") {
		t.Errorf("hit ratio %q, bandwidth %q", later["v-hit"], later["v-bw"])
	}

	// The tables: the origin's health, both plugins with their version,
	// the file readers, the tenant's slots, the origin's 503s.
	tables, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => { const o = {}; for (const id of ["t-backends","t-plugins","t-files","t-tenants","t-errors"]) o[id] = document.getElementById(id).tBodies[0].innerText; return o; })()`))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][]string{
		"t-backends": {"origin", "healthy"},
		"t-plugins":  {"file", "compute", "running"},
		"t-files":    {"error_page", "logo", "yes"},
		"t-tenants":  {"hello", "/ 2"},
		"t-errors":   {"503", "/status/503"},
	} {
		for _, w := range want {
			if !strings.Contains(tables[id], w) {
				t.Errorf("table %s: %q, want %q in it", id, tables[id], w)
			}
		}
	}

	// EDGEHOST_STATUSPAGE_LOAD=45s keeps the load on longer before the
	// screenshots, for charts with some history (docs/status.png).
	if d, err := time.ParseDuration(os.Getenv("EDGEHOST_STATUSPAGE_LOAD")); err == nil && d > 0 {
		time.Sleep(min(d, time.Minute))
	}
	out := filepath.Join("..", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Sleep(1200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writePNG(t, filepath.Join(out, "status.png"), png)

	// A phone: 375 px wide, nothing wider than the screen but the tables'
	// own scrolling boxes; the screenshot is the first screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2)), chromedp.Sleep(1200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
		t.Fatal(err)
	}
	if overflow > 0 {
		t.Errorf("at 375 px the page is %d px wider than the screen", overflow)
	}
	writePNG(t, filepath.Join(out, "status-phone.png"), png)

	if p := problems.list(); len(p) > 0 {
		t.Errorf("the page reported %d console problems:\n%s", len(p), strings.Join(p, "\n"))
	}
}

func writePNG(t *testing.T, path string, png []byte) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("%s: the screenshot is not a PNG (%d bytes)", path, len(png))
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
