package observe

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTxLogRingAndFollowers(t *testing.T) {
	l := NewTxLog(3)
	c, stop := l.Subscribe()
	defer stop()
	for i := 1; i <= 5; i++ {
		l.Publish(Tx{Status: 200 + i})
	}
	got := l.Recent()
	if len(got) != 3 || got[0].Status != 203 || got[2].Status != 205 {
		t.Fatalf("Recent = %+v, want the last 3 oldest first", got)
	}
	for i := 1; i <= 5; i++ {
		if tx := <-c; tx.Status != 200+i {
			t.Fatalf("follower got %d, want %d", tx.Status, 200+i)
		}
	}
}

func TestTxIDRoundTrip(t *testing.T) {
	id := NewID()
	if id == NewID() {
		t.Fatal("ids repeat")
	}
	b, _ := json.Marshal(Tx{ID: id, Parent: id})
	var back Tx
	if err := json.Unmarshal(b, &back); err != nil || back.ID != id || back.Parent != id {
		t.Fatalf("round trip: %s → %+v (%v)", b, back, err)
	}
	if ParseTxID(id.String()) != id || ParseTxID("not an id!") != 0 {
		t.Fatal("ParseTxID")
	}
	b, _ = json.Marshal(Tx{ID: id})
	if strings.Contains(string(b), `"parent"`) {
		t.Fatalf("a zero parent is printed: %s", b)
	}
}
