package observe

import "testing"

// A follower that does not read misses what does not fit its buffer, and
// the count says how many; publishing never waits for it.
func TestFollowCountsMissed(t *testing.T) {
	l := NewTxLog(4)
	c, missed, stop := l.Follow()
	defer stop()
	for i := range FollowBuffer + 5 {
		l.Publish(Tx{ID: TxID(i + 1)})
	}
	if got := missed.Load(); got != 5 {
		t.Errorf("missed %d, want 5", got)
	}
	if tx := <-c; tx.ID != 1 {
		t.Errorf("first followed %v, want 1 (the oldest kept)", tx.ID)
	}
	stop()
	l.Publish(Tx{ID: 9999})
	if got := missed.Load(); got != 5 {
		t.Errorf("after stop: missed %d, want 5 (no longer followed)", got)
	}
}
