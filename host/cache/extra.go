package cache

import (
	"encoding/binary"
	"time"
)

// The store's Extra bytes carry what the cache layer needs beyond the
// store's own fields: version 2 = when the response arrived (unix ns),
// stale-if-error end, request URL and host (bans match on them), then the
// caller's own extra bytes (slicer meta). Version 1 lacks the arrival time.
//
// The store's Created is the freshness base, the arrival time minus the
// initial age, so it inherits the Date field's one-second resolution (and
// any Age the origin sent); bans and purges must compare against the
// arrival time itself (issue 13: an object stored right after a ban was
// taken for older than the ban after a restart).
const (
	extraV1      = 1
	extraVersion = 2
)

func encodeExtra(o *Object) []byte {
	b := make([]byte, 0, 48+len(o.ReqURL)+len(o.ReqHost)+len(o.Extra))
	b = append(b, extraVersion)
	b = binary.AppendVarint(b, o.Created.UnixNano())
	b = binary.AppendVarint(b, o.ErrorUntil.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(o.ReqURL)))
	b = append(b, o.ReqURL...)
	b = binary.AppendUvarint(b, uint64(len(o.ReqHost)))
	b = append(b, o.ReqHost...)
	return append(b, o.Extra...)
}

// decodeExtra fills o's fields from b. o.Created is the store's freshness
// base on entry; with an arrival time it becomes that time, and the
// difference the initial age.
func decodeExtra(o *Object, b []byte) {
	if len(b) == 0 || (b[0] != extraVersion && b[0] != extraV1) {
		return
	}
	v := b[0]
	b = b[1:]
	if v == extraVersion {
		ns, n := binary.Varint(b)
		if n <= 0 {
			return
		}
		b = b[n:]
		if arrived := time.Unix(0, ns); !arrived.Before(o.Created) {
			o.InitAge = arrived.Sub(o.Created)
			o.Created = arrived
		}
	}
	ns, n := binary.Varint(b)
	if n <= 0 {
		return
	}
	b = b[n:]
	if ns != 0 {
		o.ErrorUntil = time.Unix(0, ns)
	}
	str := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return "", false
		}
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s, true
	}
	var ok bool
	if o.ReqURL, ok = str(); !ok {
		return
	}
	if o.ReqHost, ok = str(); !ok {
		return
	}
	if len(b) > 0 {
		o.Extra = append([]byte(nil), b...)
	}
}
