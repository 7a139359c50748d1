package observe

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Records the query tests run against.
var (
	qHit = Tx{ID: 100, Root: 100, Kind: "client", Method: "GET", Host: "a.example", URL: "/img/logo.png",
		Route: "/img/", Status: 200, Cache: "edgehost; hit; ttl=93", Bytes: 1024, Duration: 80 * time.Microsecond}
	qFastHit = Tx{ID: 101, Root: 101, Kind: "client", Method: "HEAD", Host: "a.example", URL: "/style.css",
		Route: "", Status: 200, Cache: "hit", Bytes: 0, Duration: 20 * time.Microsecond}
	qMiss = Tx{ID: 102, Root: 102, Kind: "client", Method: "GET", Host: "b.example", URL: "/api/users?id=7",
		Route: "/api/", Status: 503, Cache: "edgehost; fwd=uri-miss; fwd-status=503", Bytes: 12,
		Duration: 250 * time.Millisecond, TTFB: 240 * time.Millisecond, Error: "origin: connection refused", Remote: "10.0.0.9:5123"}
	qSub = Tx{ID: 103, Parent: 102, Root: 102, Kind: "segment", Method: "GET", Host: "b.example", URL: "/api/users?id=7",
		Route: "/api/", Status: 206, Cache: "edgehost; fwd=vary-miss; stored; collapsed", Bytes: 1 << 20, Duration: 3 * time.Millisecond}
	qPass = Tx{ID: 104, Root: 104, Kind: "client", Method: "POST", Host: "b.example", URL: "/api/login",
		Route: "/api/", Status: 404, Cache: "edgehost; fwd=method", Duration: 7 * time.Millisecond}
	qAll = []Tx{qHit, qFastHit, qMiss, qSub, qPass}
)

func TestQuerySemantics(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want string // the ids (base 36) that match, in qAll order
	}{
		{``, "2s 2t 2u 2v 2w"},
		{`status >= 500 && route == "/api/"`, "2u"},
		{`status >= 500`, "2u"},
		{`status < 300`, "2s 2t 2v"},
		{`status != 200`, "2u 2v 2w"},
		{`status == 404 || status == 206`, "2v 2w"},
		{`hit`, "2s 2t"},
		{`!hit`, "2u 2v 2w"},
		{`miss`, "2u 2v"},
		{`pass`, "2w"},
		{`stored && collapsed`, "2v"},
		{`fwd == "method"`, "2w"},
		{`cache ~ "fwd=uri-miss"`, "2u"},
		{`url ~ "\.css$"`, "2t"},
		{`url !~ "^/api/"`, "2s 2t"},
		{`method == "GET" && host == "b.example"`, "2u 2v"},
		{`method == POST`, "2w"}, // a bare word is a string
		{`dur > 100ms`, "2u"},
		{`dur <= 20us`, "2t"},
		{`dur < 5ms && dur > 1ms`, "2v"},
		{`ttfb > 5ms`, "2u"},
		{`dur == 0`, ""},
		{`bytes >= 1024`, "2s 2v"},
		{`bytes == 0`, "2t 2w"},
		{`kind == "segment"`, "2v"},
		{`parent`, "2v"},
		{`!parent`, "2s 2t 2u 2w"},
		{`parent == 2u`, "2v"},
		{`parent == ""`, "2s 2t 2u 2w"},
		{`id == "2w" || id == 2s`, "2s 2w"},
		{`root == 2u`, "2u 2v"},
		{`id ~ "^2[st]$"`, "2s 2t"},
		{`error`, "2u"},
		{`error ~ "refused"`, "2u"},
		{`remote ~ "^10\."`, "2u"},
		{`status ~ "^5"`, "2u"},
		{`dur ~ "ms$"`, "2u 2v 2w"},
		{`!(hit || miss)`, "2w"},
		{`!!hit`, "2s 2t"},
		{`hit && method == "HEAD" || pass`, "2t 2w"}, // && binds tighter
		{`hit && (method == "HEAD" || pass)`, "2t"},
		{`route == ""`, "2t"},
		{`route`, "2s 2u 2v 2w"},
		{"status >= 500\n|| pass", "2u 2w"},
	} {
		q, err := ParseQuery(tc.q)
		if err != nil {
			t.Errorf("%q: %v", tc.q, err)
			continue
		}
		var got []string
		for i := range qAll {
			if q.Match(&qAll[i]) {
				got = append(got, qAll[i].ID.String())
			}
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%q matches [%s], want [%s]", tc.q, g, tc.want)
		}
	}
}

func TestQueryErrors(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{`status ==`, `1:10: expected a value after "==", found the end of the query`},
		{`status >= 500 && route ==`, `1:26: expected a value after "==", found the end of the query`},
		{`status == "x"`, `1:11: status is a number: expected a whole number after "==", found "x"`},
		{`dur > 100`, `1:7: dur is a duration: expected a duration such as 100ms after ">", found "100" (write a unit: ns us ms s m h)`},
		{`dur > fast`, `1:7: dur is a duration: expected a duration such as 100ms after ">", found "fast"`},
		{`url > "/a"`, `1:5: url is a string: compare it with == != ~ !~, not ">"`},
		{`url == 5`, `1:8: url is a string: expected a quoted value after "==", found "5"`},
		{`status = 5`, `1:8: expected an operator (== != < <= > >= ~ !~), found "="`},
		{`hit == 1`, `1:5: hit is a flag: write hit or !hit, without "=="`},
		{`stauts == 5`, `1:1: unknown field "stauts" (fields: bytes cache collapsed dur error fwd hit host id kind method miss parent pass remote root route status stored ttfb url)`},
		{`url ~ "("`, "1:7: bad regular expression: error parsing regexp: missing closing ): `(`"},
		{`url ~ abc`, `1:7: expected a quoted regular expression after "~", found "abc"`},
		{`url == "abc`, `1:8: unterminated string`},
		{`(hit || miss`, `1:13: expected ")" to close the "(" at 1:1, found the end of the query`},
		{`hit miss`, `1:5: expected && or || or the end, found "miss"`},
		{`hit & miss`, `1:5: expected && or || or the end, found "&"`},
		{`hit &&`, `1:7: expected a field name, "!" or "(", found the end of the query`},
		{`&& hit`, `1:1: expected a field name, "!" or "(", found "&&"`},
		{"hit &&\n  status == ", `2:13: expected a value after "==", found the end of the query`},
		{`id == "-"`, `1:7: id is a transaction id: expected a base-36 id such as "k2x7p01", found "-"`},
		{`status < 1`, ``},
		{strings.Repeat("(", 100) + "hit" + strings.Repeat(")", 100), `1:65: query nested deeper than 64`},
		{strings.Repeat("!", 100) + "hit", `1:65: query nested deeper than 64`},
		{"url == \"" + strings.Repeat("a", MaxQueryLen) + "\"", `1:1: query longer than 4096 bytes`},
		// 3.5 KiB that compiled to 1.5 million instructions (100 MiB, 0.3 s).
		{`url ~ "` + strings.Repeat(`.{1000}`, 500) + `"`, `1:7: bad regular expression: regular expressions too large: more than 20000 instructions in all once their repeats are expanded`},
		// The bound is for the query's expressions together: a third of
		// about 8000 instructions is refused.
		{strings.Repeat(`url ~ "`+strings.Repeat(`.{1000}`, 4)+`" || `, 2) + `url ~ "` + strings.Repeat(`.{1000}`, 4) + `"`, `1:87: bad regular expression: regular expressions too large: more than 20000 instructions in all once their repeats are expanded`},
	} {
		_, err := ParseQuery(tc.q)
		got := ""
		if err != nil {
			got = err.Error()
			var qe *QueryError
			if !errors.As(err, &qe) || !errors.Is(err, ErrQuery) {
				t.Errorf("%q: error %T is not a *QueryError wrapping ErrQuery", tc.q, err)
			}
		}
		if got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.q, got, tc.want)
		}
	}
}

func TestCacheParam(t *testing.T) {
	for _, tc := range []struct {
		cache, name, want string
		ok                bool
	}{
		{"edgehost; fwd=uri-miss; stored", "fwd", "uri-miss", true},
		{"edgehost; fwd=uri-miss; stored", "stored", "", true},
		{"edgehost; fwd=uri-miss; stored", "hit", "", false},
		{"hit", "hit", "", true},
		{"edgehost; hit; ttl=93; detail=stale", "detail", "stale", true},
		{`edgehost; fwd=miss; key="a;b"`, "fwd", "miss", true},
		{"edgehost; fwd-status=503", "fwd", "", false},
		{"", "hit", "", false},
	} {
		got, ok := CacheParam(tc.cache, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CacheParam(%q, %q) = %q, %v; want %q, %v", tc.cache, tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// The filter runs on the server for every followed record: matching the
// usual fields must not allocate.
func TestQueryMatchAllocatesNothing(t *testing.T) {
	q, err := ParseQuery(`(status >= 500 || miss) && route == "/api/" && dur > 1ms && !parent && url ~ "^/api"`)
	if err != nil {
		t.Fatal(err)
	}
	tx := qMiss
	if !q.Match(&tx) {
		t.Fatal("no match")
	}
	if n := testing.AllocsPerRun(100, func() { q.Match(&tx) }); n != 0 {
		t.Errorf("Match allocates %v times, want 0", n)
	}
}

func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		`status >= 500 && route == "/api/"`, `!(hit || miss) && dur > 1.5ms`, `url ~ "\.css$"`,
		`parent == 2u`, `error`, `ttfb > 5µs`, `(((hit`, `url == "a\"b\\"`, `status = 5`, "hit\n&&", `id ~ "^2"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := ParseQuery(src)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("%q: error %T %v is not a *QueryError", src, err, err)
			}
			if qe.Line < 1 || qe.Col < 1 || qe.Col > len(src)+1 || qe.Line > strings.Count(src, "\n")+1 {
				t.Fatalf("%q: position %d:%d outside the query", src, qe.Line, qe.Col)
			}
			return
		}
		if q == nil {
			if strings.TrimSpace(src) != "" {
				t.Fatalf("%q: no query and no error", src)
			}
			return
		}
		for i := range qAll {
			a := q.Match(&qAll[i])
			if b := q.Match(&qAll[i]); a != b {
				t.Fatalf("%q: Match is not deterministic", src)
			}
		}
		// The query reads the same when parenthesized and when negated twice.
		q2, err := ParseQuery("!!(" + src + ")")
		if err != nil {
			if strings.Contains(err.Error(), "nested deeper") || strings.Contains(err.Error(), "longer than") {
				return
			}
			t.Fatalf("%q parses, !!(…) does not: %v", src, err)
		}
		for i := range qAll {
			if q.Match(&qAll[i]) != q2.Match(&qAll[i]) {
				t.Fatalf("%q and !!(%s) disagree on record %d", src, src, i)
			}
		}
	})
}
