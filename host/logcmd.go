package main

// `edgehost log` and `edgehost top` (issue 17): varnishlog's and
// varnishtop's jobs over the admin API's /log stream. The selection (-q,
// -g, -since, -n) is made by the server, so that following a busy edgehost
// with a narrow query does not ship every record; the query is parsed here
// first too, to point at a mistake without a round trip.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgehost/edgehost/host/observe"
)

const logUsage = `usage: edgehost log [-config FILE] [-q QUERY] [-g request|raw] [-n N] [-since T] [-d] [-json]

Prints the transaction log: the records the running edgehost keeps, then new
ones as they happen (as varnishlog follows; -d prints the kept ones and
exits, as varnishlog -d).

  -q QUERY   only the transactions QUERY selects, e.g.
               -q 'status >= 500 && route == "/api/"'
               -q 'miss && dur > 100ms'   -q 'url ~ "\.css$" && !hit'
             fields: status method host url route cache fwd kind remote
             error bytes dur ttfb id parent root; flags: hit miss pass
             stored collapsed; operators == != < <= > >= ~ !~ && || ! ( );
             durations 100ms 1.5s; regular expressions are Go's (RE2)
  -g MODE    raw: one line per record as it finishes (the default);
             request: each request with its subrequests indented under it,
             a group shown whole when any of its records matches -q
  -group     the same as -g request
  -n N       stop after N records (-g raw) or requests (-g request)
  -since T   only records that started at or after T: 5m (five minutes ago)
             or an RFC 3339 time; the kept records from T, then new ones
  -d         print the kept records and exit (the same as -follow=false)
  -json      JSON lines, one transaction per line, for tools

The server does not wait for a slow follower: records it could not send are
counted on stderr ("N records missed").`

// cmdLog runs `edgehost log`.
func cmdLog(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("log", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), logUsage) }
	path := fs.String("config", "config.hcl", "config file of the running edgehost")
	query := fs.String("q", "", "")
	mode := fs.String("g", "raw", "")
	group := fs.Bool("group", false, "")
	n := fs.Int("n", 0, "")
	since := fs.String("since", "", "")
	dump := fs.Bool("d", false, "")
	follow := fs.Bool("follow", true, "")
	asJSON := fs.Bool("json", false, "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("log: unexpected argument %q (quote the query: -q '...')", fs.Arg(0))}
	}
	switch *mode {
	case "raw":
	case "request":
		*group = true
	default:
		return usageError{fmt.Sprintf("-g: expected request or raw, found %q", *mode)}
	}
	if *n < 0 {
		return usageError{"-n: expected a count of 0 or more"}
	}
	sel := url.Values{}
	if err := checkLogFlags(sel, *query, *since); err != nil {
		return err
	}
	if *follow && !*dump {
		sel.Set("follow", "1")
		sel.Set("missed", "1")
	}
	if *group {
		sel.Set("group", "1")
	}
	if *n > 0 {
		sel.Set("n", strconv.Itoa(*n))
	}
	body, err := openLog(ctx, *path, sel)
	if err != nil {
		return err
	}
	defer body.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	p := &logPrinter{w: out, json: *asJSON, group: *group}
	live := sel.Get("follow") == "1"
	err = readLog(body, func(line []byte, tx *observe.Tx) {
		p.print(line, tx)
		if live {
			out.Flush() // live: each record as it comes
		}
	}, func(n int) {
		out.Flush()
		fmt.Fprintf(os.Stderr, "edgehost log: %d records missed: this follower fell behind (a narrower -q helps)\n", n)
	})
	if ctx.Err() != nil {
		return nil // interrupted: the usual way to stop following
	}
	return err
}

// flagError is -h's success or a bad flag's usage error (the flag package
// has printed the message).
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return usageError{}
}

// checkLogFlags parses -q and -since here, to point at a mistake without a
// round trip, and puts them in sel for the server. The server is sent the
// -since given (not a time computed here) so that 5m means five minutes of
// its clock.
func checkLogFlags(sel url.Values, query, since string) error {
	if _, err := observe.ParseQuery(query); err != nil {
		return fmt.Errorf("-q: %w", err)
	}
	if _, err := observe.ParseSince(since, time.Now()); err != nil {
		return fmt.Errorf("-since: %w", err)
	}
	if query != "" {
		sel.Set("q", query)
	}
	if since != "" {
		sel.Set("since", since)
	}
	return nil
}

// openLog requests /log with sel from the edgehost running with the config
// at path; a refused selection comes back as the server's message, named
// for the flag ("-q: 1:12: …").
func openLog(ctx context.Context, path string, sel url.Values) (io.ReadCloser, error) {
	call, err := adminClient(ctx, path)
	if err != nil {
		return nil, err
	}
	resp, err := call("GET", "/log?"+sel.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		msg := strings.TrimSpace(string(b))
		if resp.StatusCode == http.StatusBadRequest {
			return nil, errors.New("-" + msg)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return resp.Body, nil
}

// readLog calls fn with each record of a /log stream (skipping the blank
// keep-alive lines) until it ends; a notice of missed records (missed=1)
// goes to missed.
func readLog(r io.Reader, fn func(line []byte, tx *observe.Tx), missed func(n int)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte(`{"missed":`)) {
			var m struct{ Missed int }
			if err := json.Unmarshal(line, &m); err != nil {
				return fmt.Errorf("log stream: %w in %.80q", err, line)
			}
			if missed != nil {
				missed(m.Missed)
			}
			continue
		}
		var tx observe.Tx
		if err := json.Unmarshal(line, &tx); err != nil {
			return fmt.Errorf("log stream: %w in %.80q", err, line)
		}
		fn(line, &tx)
	}
	return sc.Err()
}

// logPrinter prints records as they come. The server sends a group as its
// request followed by its subrequests, depth first; the printer indents
// each under its parent.
type logPrinter struct {
	w     io.Writer
	json  bool
	group bool                 // -g request: indent subrequests
	depth map[observe.TxID]int // the current group's records and their depth
}

func (p *logPrinter) print(line []byte, tx *observe.Tx) {
	if p.json {
		p.w.Write(line)
		p.w.Write([]byte{'\n'})
		return
	}
	if !p.group {
		fmt.Fprintln(p.w, formatTx(*tx, ""))
		return
	}
	pd, ok := p.depth[tx.Parent]
	if tx.Parent == 0 || !ok {
		// A new group. One whose request is not there (it fell out of the
		// ring) starts at depth 1, under the missing request.
		p.depth = map[observe.TxID]int{}
		pd = -1
		if tx.Parent != 0 {
			p.depth[tx.Parent], pd = 0, 0
		}
	}
	d := pd + 1
	p.depth[tx.ID] = d
	indent := ""
	if d > 0 {
		indent = strings.Repeat("  ", d-1) + "  └ "
	}
	fmt.Fprintln(p.w, formatTx(*tx, indent))
}

func formatTx(tx observe.Tx, indent string) string {
	s := fmt.Sprintf("%s%s %-12s %-7s %s %-6s %s%s %d %dB %s [%s]", indent, tx.Start.Format("15:04:05.000"), tx.ID, tx.Kind,
		tx.Method, "", tx.Host, tx.URL, tx.Status, tx.Bytes, tx.Duration.Round(time.Microsecond), tx.Cache)
	if tx.Parent != 0 {
		s += " parent=" + tx.Parent.String()
	}
	if tx.Error != "" {
		s += " error=" + tx.Error
	}
	return s
}

const topUsage = `usage: edgehost top [-config FILE] [-q QUERY] [-n ROWS] [-p PERIOD] [-1] [-json]

A live view of the running edgehost's most requested URLs, most missed URLs
and slowest URLs (varnishtop's job), refreshed every second. Counts decay:
a request counts 1 when it happens and 1/e one PERIOD later, so the view
shows what happens now. The slowest are ranked by the largest of each URL's
last 16 durations within PERIOD (with their median). It starts from the
records the server keeps, then follows. When stdout is not a terminal each
view is printed after the previous one.

  -q QUERY   count only what QUERY selects (see edgehost log -h); the
             default, !parent, counts the requests clients made and not
             their subrequests
  -n ROWS    rows per list (default 10)
  -p PERIOD  decay period and window of the slowest (default 1m)
  -1         print one view of the kept records and exit
  -json      each view as one JSON line`

// topCapacity bounds the URLs top keeps (observe.Top evicts the least
// requested half when it is full).
const topCapacity = 10000

// cmdTop runs `edgehost top`.
func cmdTop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), topUsage) }
	path := fs.String("config", "config.hcl", "config file of the running edgehost")
	query := fs.String("q", "!parent", "")
	rows := fs.Int("n", 10, "")
	period := fs.Duration("p", time.Minute, "")
	once := fs.Bool("1", false, "")
	asJSON := fs.Bool("json", false, "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("top: unexpected argument %q (quote the query: -q '...')", fs.Arg(0))}
	}
	if *rows < 1 || *period <= 0 {
		return usageError{"top: -n and -p must be positive"}
	}
	sel := url.Values{}
	if err := checkLogFlags(sel, *query, ""); err != nil {
		return err
	}
	if !*once {
		sel.Set("follow", "1")
		sel.Set("missed", "1")
	}
	body, err := openLog(ctx, *path, sel)
	if err != nil {
		return err
	}
	defer body.Close()
	v := &topView{top: observe.NewTop(topCapacity, *period, *period), rows: *rows, period: *period,
		query: *query, json: *asJSON, w: os.Stdout, term: isTerminal(os.Stdout)}
	if *once {
		if err := readLog(body, func(_ []byte, tx *observe.Tx) { v.top.Add(tx) }, nil); err != nil {
			return err
		}
		v.render(time.Now())
		return nil
	}
	ended := make(chan error, 1)
	go func() {
		ended <- readLog(body, func(_ []byte, tx *observe.Tx) {
			v.mu.Lock()
			v.top.Add(tx)
			v.mu.Unlock()
		}, func(n int) {
			v.mu.Lock()
			v.missed += n
			v.mu.Unlock()
		})
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-ended:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("the log stream ended (edgehost stopped?)")
			}
			return err
		case now := <-tick.C:
			v.mu.Lock()
			v.render(now)
			v.mu.Unlock()
		}
	}
}

type topView struct {
	mu     sync.Mutex // guards top while the stream feeds it
	top    *observe.Top
	rows   int
	period time.Duration
	query  string
	json   bool
	term   bool // stdout is a terminal: clear it before each view
	missed int  // records the server could not send: top fell behind
	w      io.Writer
}

func (v *topView) render(now time.Time) {
	view := v.top.View(now, v.rows)
	view.MissedRecords = v.missed
	if v.json {
		b, _ := json.Marshal(view)
		v.w.Write(append(b, '\n'))
		return
	}
	var b strings.Builder
	if v.term {
		b.WriteString("\x1b[H\x1b[2J") // cursor home, clear the screen
	} else if view.Records > 0 || v.top.Len() > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "edgehost top  %s  %d records  decay %s  -q %q\n", view.Time.Format("15:04:05"), view.Records, v.period, v.query)
	if v.missed > 0 {
		fmt.Fprintf(&b, "%d records missed: top fell behind the server\n", v.missed)
	}
	counts := func(title string, rows []observe.TopRow) {
		fmt.Fprintf(&b, "\n%s\n", title)
		for _, r := range rows {
			fmt.Fprintf(&b, "%10.2f  %s\n", r.Count, r.URL)
		}
	}
	counts("most requested", view.Requested)
	counts("most missed", view.Missed)
	fmt.Fprintf(&b, "\nslowest (last %s)\n%10s %10s %4s  %s\n", v.period, "max", "p50", "n", "url")
	for _, r := range view.Slowest {
		fmt.Fprintf(&b, "%10s %10s %4d  %s\n", r.Max.Round(time.Microsecond), r.P50.Round(time.Microsecond), r.N, r.URL)
	}
	io.WriteString(v.w, b.String())
}

// isTerminal reports whether f is a terminal (it answers the termios
// ioctl), to clear the screen between views only there.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
