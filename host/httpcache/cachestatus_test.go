package httpcache

import (
	"testing"
	"time"
)

func TestCacheStatusString(t *testing.T) {
	s := time.Second
	tests := []struct {
		cs   CacheStatus
		want string
	}{
		// RFC 9211 §2.1
		{CacheStatus{Hit: true, TTL: 93 * s}, "edgehost; hit; ttl=93"},
		{CacheStatus{Hit: true, TTL: 93*s + 999*time.Millisecond}, "edgehost; hit; ttl=93"},
		// §2.5: ttl is negative once stale; served in grace.
		{CacheStatus{Hit: true, TTL: -4 * s, Detail: "stale"}, "edgehost; hit; ttl=-4; detail=stale"},
		{CacheStatus{Hit: true, TTL: -500 * time.Millisecond}, "edgehost; hit; ttl=-1"},
		{CacheStatus{Hit: true, TTL: 0}, "edgehost; hit; ttl=0"},
		// §2.2, §2.4: fwd and stored.
		{CacheStatus{Fwd: FwdMiss, Stored: true, TTL: 120 * s}, "edgehost; fwd=miss; stored; ttl=120"},
		{CacheStatus{Fwd: FwdURIMiss}, "edgehost; fwd=uri-miss"},
		{CacheStatus{Fwd: FwdVaryMiss}, "edgehost; fwd=vary-miss"},
		{CacheStatus{Fwd: FwdBypass}, "edgehost; fwd=bypass"},
		{CacheStatus{Fwd: FwdRequest}, "edgehost; fwd=request"},
		// §2.3: fwd-status.
		{CacheStatus{Fwd: FwdStale, FwdStatus: 200}, "edgehost; fwd=stale; fwd-status=200"},
		{CacheStatus{Fwd: FwdStale, FwdStatus: 304, Stored: true, TTL: 60 * s}, "edgehost; fwd=stale; fwd-status=304; stored; ttl=60"},
		// §2.6: collapsed.
		{CacheStatus{Fwd: FwdURIMiss, Collapsed: true}, "edgehost; fwd=uri-miss; collapsed"},
		// §2.1: hit and fwd are exclusive; hit wins.
		{CacheStatus{Hit: true, Fwd: FwdMiss, FwdStatus: 200, TTL: s}, "edgehost; hit; ttl=1"},
		// §2.7, §2.8: key is an sf-string; detail a token or an sf-string.
		{CacheStatus{Hit: true, TTL: s, Key: `GET example.com/a"b\c`}, `edgehost; hit; ttl=1; key="GET example.com/a\"b\\c"`},
		{CacheStatus{Hit: true, TTL: s, Key: "caf\xc3\xa9\n"}, `edgehost; hit; ttl=1; key="caf???"`},
		{CacheStatus{Fwd: FwdMiss, Detail: "origin timeout"}, `edgehost; fwd=miss; detail="origin timeout"`},
		{CacheStatus{Fwd: FwdMiss, Detail: "mem/disk:1"}, `edgehost; fwd=miss; detail=mem/disk:1`},
		{CacheStatus{Fwd: FwdMiss, Detail: "1x"}, `edgehost; fwd=miss; detail="1x"`},
		{CacheStatus{}, "edgehost"},
	}
	for _, tt := range tests {
		if got := tt.cs.String(); got != tt.want {
			t.Errorf("%+v.String()\n got %s\nwant %s", tt.cs, got, tt.want)
		}
	}
}

func TestCacheStatusAllocs(t *testing.T) {
	cs := CacheStatus{Hit: true, TTL: 93 * time.Second, Detail: "stale"}
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() { buf = cs.AppendTo(buf[:0]) }); n != 0 {
		t.Errorf("AppendTo allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = cs.String() }); n > 1 {
		t.Errorf("String allocates %v times, want 1", n)
	}
}
