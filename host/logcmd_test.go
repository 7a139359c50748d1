package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

// The server sends a group as its request, then the subrequests depth
// first; the printer indents each under its parent.
func TestLogPrinterIndentsGroups(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	stream := []observe.Tx{
		{ID: 1, Kind: "client", Method: "GET", URL: "/a", Status: 200, Start: t0},
		{ID: 2, Parent: 1, Root: 1, Kind: "self", Method: "GET", URL: "/b", Status: 200, Start: t0},
		{ID: 3, Parent: 2, Root: 1, Kind: "segment", Method: "GET", URL: "/b", Status: 206, Start: t0},
		{ID: 4, Parent: 1, Root: 1, Kind: "segment", Method: "GET", URL: "/a", Status: 206, Start: t0},
		{ID: 5, Kind: "client", Method: "GET", URL: "/c", Status: 404, Start: t0},
		// a group whose request fell out of the ring
		{ID: 7, Parent: 6, Root: 6, Kind: "self", Method: "GET", URL: "/d", Status: 200, Start: t0},
		{ID: 8, Parent: 6, Root: 6, Kind: "self", Method: "GET", URL: "/e", Status: 200, Start: t0},
	}
	print := func(group bool) string {
		var b strings.Builder
		p := &logPrinter{w: &b, group: group}
		for i := range stream {
			p.print(stream[i].MarshalLine(), &stream[i])
		}
		return b.String()
	}
	var shape []string
	for _, line := range strings.Split(strings.TrimSuffix(print(true), "\n"), "\n") {
		// the indent and the URL of each line
		i := strings.Index(line, "06:00:00.000")
		f := strings.Fields(line[i:])
		shape = append(shape, line[:i]+f[4])
	}
	want := []string{"/a", "  └ /b", "    └ /b", "  └ /a", "/c", "  └ /d", "  └ /e"}
	if strings.Join(shape, "|") != strings.Join(want, "|") {
		t.Errorf("-g request:\n%s\nwant %q", print(true), want)
	}
	// -g raw, the default: one line per record, none indented, as before.
	raw := strings.Split(strings.TrimSuffix(print(false), "\n"), "\n")
	if len(raw) != len(stream) {
		t.Fatalf("raw: %d lines, want %d", len(raw), len(stream))
	}
	for i, line := range raw {
		if want := formatTx(stream[i], ""); line != want {
			t.Errorf("raw line %d: %q, want %q", i, line, want)
		}
	}
	// -json: the lines as received.
	var b strings.Builder
	p := &logPrinter{w: &b, json: true, group: true}
	p.print([]byte(`{"id":"1"}`), &stream[0])
	if b.String() != "{\"id\":\"1\"}\n" {
		t.Errorf("-json printed %q", b.String())
	}
}

func TestTopRender(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	top := observe.NewTop(100, time.Minute, time.Minute)
	for i := range 3 {
		top.Add(&observe.Tx{Host: "h", URL: "/a", Cache: "edgehost; fwd=uri-miss", Start: t0, Duration: time.Duration(i+1) * time.Millisecond})
	}
	for _, term := range []bool{true, false} {
		var b strings.Builder
		v := &topView{top: top, rows: 5, period: time.Minute, query: "!parent", w: &b, term: term}
		v.render(t0)
		out := b.String()
		if got := strings.HasPrefix(out, "\x1b[H\x1b[2J"); got != term {
			t.Errorf("term %v: clears the screen: %v\n%q", term, got, out)
		}
		for _, want := range []string{"most requested\n      3.00  h/a\n", "most missed\n      3.00  h/a\n", "3ms        2ms    3  h/a"} {
			if !strings.Contains(out, want) {
				t.Errorf("term %v: view lacks %q:\n%s", term, want, out)
			}
		}
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe reads as a terminal")
	}
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to check the positive case: %v", err)
	}
	defer ptm.Close()
	if !isTerminal(ptm) {
		t.Error("a pseudo-terminal does not read as a terminal")
	}
}

func TestReadLogNoticesAndErrors(t *testing.T) {
	stream := "{\"id\":\"1\",\"status\":200}\n\n{\"missed\":7}\n{\"id\":\"2\",\"status\":503}\n"
	var ids []string
	missed := 0
	err := readLog(strings.NewReader(stream), func(_ []byte, tx *observe.Tx) { ids = append(ids, tx.ID.String()) },
		func(n int) { missed += n })
	if err != nil || strings.Join(ids, " ") != "1 2" || missed != 7 {
		t.Errorf("readLog: ids %v, missed %d, err %v; want 1 2, 7, nil", ids, missed, err)
	}
	// A line that is not a record is an error that quotes it, not a skip.
	err = readLog(strings.NewReader("{\"id\":\"1\"}\nnot json\n"), func([]byte, *observe.Tx) {}, nil)
	if err == nil || !strings.Contains(err.Error(), `"not json"`) {
		t.Errorf("readLog of a bad line: %v", err)
	}
}
