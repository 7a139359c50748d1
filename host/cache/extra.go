package cache

import (
	"encoding/binary"
	"time"
)

// The store's Extra bytes carry what the cache layer needs beyond the
// store's own fields: version 1 = stale-if-error end, request URL and host
// (bans match on them), then the caller's own extra bytes (slicer meta).
const extraVersion = 1

func encodeExtra(o *Object) []byte {
	b := make([]byte, 0, 32+len(o.ReqURL)+len(o.ReqHost)+len(o.Extra))
	b = append(b, extraVersion)
	b = binary.AppendVarint(b, o.ErrorUntil.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(o.ReqURL)))
	b = append(b, o.ReqURL...)
	b = binary.AppendUvarint(b, uint64(len(o.ReqHost)))
	b = append(b, o.ReqHost...)
	return append(b, o.Extra...)
}

func decodeExtra(o *Object, b []byte) {
	if len(b) == 0 || b[0] != extraVersion {
		return
	}
	b = b[1:]
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
