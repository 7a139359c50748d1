package admin

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/observe"
)

func urlq(s string) string { return url.QueryEscape(s) }

func logAPI(t *testing.T, l *observe.TxLog) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler(Options{Token: "tok", Cache: &fakeCache{}, Metrics: &observe.Metrics{}, TxLog: l,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	return srv
}

func getLog(t *testing.T, srv *httptest.Server, query string) (*http.Response, error) {
	req, _ := http.NewRequest("GET", srv.URL+"/log?"+query, nil)
	req.Header.Set("Authorization", "Bearer tok")
	return srv.Client().Do(req)
}

// readIDs reads JSON lines and returns their ids, space separated.
func readIDs(t *testing.T, r io.Reader) string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var tx observe.Tx
		if err := json.Unmarshal(sc.Bytes(), &tx); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		out = append(out, tx.ID.String())
	}
	return strings.Join(out, " ")
}

func TestLogSelection(t *testing.T) {
	l := observe.NewTxLog(16)
	now := time.Now()
	for _, tx := range []observe.Tx{
		{ID: 2, Parent: 1, Root: 1, Status: 503, Start: now.Add(-time.Hour), URL: "/api/x"},
		{ID: 1, Root: 1, Status: 200, Start: now.Add(-time.Hour), URL: "/api/x"},
		{ID: 3, Root: 3, Status: 404, Start: now, URL: "/missing"},
		{ID: 4, Root: 4, Status: 200, Start: now, URL: "/ok", Cache: "hit"},
	} {
		l.Publish(tx)
	}
	srv := logAPI(t, l)
	for _, tc := range []struct {
		query string
		code  int
		want  string // ids, or the start of the error body
	}{
		{"", 200, "2 1 3 4"},
		{"q=" + urlq(`status >= 400`), 200, "2 3"},
		{"group=1&q=" + urlq(`status >= 500`), 200, "1 2"},
		{"group=1", 200, "1 2 3 4"},
		{"q=hit", 200, "4"},
		{"n=2", 200, "2 1"},
		{"since=5m", 200, "3 4"},
		{"q=" + urlq(`status >= 500 && route ==`), 400, `q: 1:26: expected a value after "=="`},
		{"since=yesterday", 400, "since: expected a duration"},
		{"n=-1", 400, `n: expected a count of 0 or more, found "-1"`},
	} {
		resp, err := getLog(t, srv, tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d, want %d", tc.query, resp.StatusCode, tc.code)
		}
		if tc.code != 200 {
			b, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(string(b), tc.want) {
				t.Errorf("%s: body %q, want it to start with %q", tc.query, b, tc.want)
			}
		} else if got := readIDs(t, resp.Body); got != tc.want {
			t.Errorf("%s: ids %s, want %s", tc.query, got, tc.want)
		}
		resp.Body.Close()
	}
}

// Following with q and n: the server filters the live records and ends the
// response after n, so `edgehost log -n` ends however quiet the server is.
func TestLogFollowFilterAndLimit(t *testing.T) {
	l := observe.NewTxLog(16)
	l.Publish(observe.Tx{ID: 1, Root: 1, Status: 500})
	srv := logAPI(t, l)
	resp, err := getLog(t, srv, "follow=1&n=3&q="+urlq("status >= 500"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan string)
	go func() { done <- readIDs(t, resp.Body) }()
	// Publish until the follower has seen its three (it subscribes once the
	// request is in; records before that are in the ring).
	for id := observe.TxID(2); ; id++ {
		select {
		case got := <-done:
			// Ids 1, then the 5xx ones among 2, 3, 4…: every third is 5xx.
			if got != "1 3 6" {
				t.Errorf("followed %s, want 1 3 6 (the 5xx records, each once)", got)
			}
			return
		case <-time.After(5 * time.Millisecond):
		}
		status := 200
		if id%3 == 0 {
			status = 503
		}
		l.Publish(observe.Tx{ID: id, Root: id, Status: status})
		if id > 10000 {
			t.Fatal("the response did not end after n records")
		}
	}
}

// The follower subscribes before it reads the ring, so records published in
// between are in both; each must be sent once.
func TestLogFollowSendsEachRecordOnce(t *testing.T) {
	l := observe.NewTxLog(16)
	l.Publish(observe.Tx{ID: 1, Root: 1})
	afterSubscribe = func() {
		l.Publish(observe.Tx{ID: 2, Root: 2})
		l.Publish(observe.Tx{ID: 3, Root: 3})
	}
	defer func() { afterSubscribe = func() {} }()
	srv := logAPI(t, l)
	resp, err := getLog(t, srv, "follow=1&n=4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		time.Sleep(50 * time.Millisecond)
		l.Publish(observe.Tx{ID: 4, Root: 4})
	}()
	if got := readIDs(t, resp.Body); got != "1 2 3 4" {
		t.Errorf("followed %s, want 1 2 3 4 (each once)", got)
	}
}

// A follower that falls behind misses records (publishing never waits) and,
// with missed=1, is told how many.
func TestLogFollowToldMissed(t *testing.T) {
	l := observe.NewTxLog(16)
	afterSubscribe = func() {
		// Before the handler reads its channel: the buffer fills, 3 more
		// are missed.
		for id := observe.TxID(1); id <= observe.FollowBuffer+3; id++ {
			l.Publish(observe.Tx{ID: id, Root: id, Status: 200})
		}
		l.Publish(observe.Tx{ID: 5000, Root: 5000, Status: 500})
	}
	defer func() { afterSubscribe = func() {} }()
	srv := logAPI(t, l)
	resp, err := getLog(t, srv, "follow=1&missed=1&n=2&q="+urlq("status == 500"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		time.Sleep(50 * time.Millisecond)
		l.Publish(observe.Tx{ID: 6000, Root: 6000, Status: 500})
	}()
	b, _ := io.ReadAll(resp.Body)
	// The 500 published in the hook comes from the ring (the channel
	// missed it), then the notice of the 4 the channel missed (1025 to
	// 1027 and that 500), then the next 500, the second of n=2.
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"id":"3uw"`) || lines[1] != `{"missed":4}` || !strings.Contains(lines[2], `"id":"4mo"`) {
		t.Errorf("stream:\n%s\nwant record 3uw (5000), {\"missed\":4}, record 4mo (6000)", b)
	}
}
