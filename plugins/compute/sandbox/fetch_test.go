package sandbox

import (
	"context"
	"strings"
	"testing"
)

func TestFetchProcess(t *testing.T) {
	fetch := func(ctx context.Context, depth uint32, parent string, f *FetchRequest) (*FetchResult, error) {
		if f.URL == "/missing" {
			return &FetchResult{Status: 404}, nil
		}
		return &FetchResult{Status: 200, ContentType: "text/plain", Body: []byte(strings.Repeat("x", 28<<10))}, nil
	}
	tn, err := NewTenant("fetch", program(t, "fetch"), Settings{Backend: "process", Ephemeral: true, Concurrency: 1}, fetch, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	for _, u := range []string{"/?src=/data", "/?src=/missing", "/?src=/data", "/?src=/missing"} {
		r, err := get(t, tn, u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		t.Logf("%s: %d %s", u, r.Status, r.Body)
	}
}
