package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseSize parses a byte size such as "64MiB", "1GiB", "512k", "1.5MB" or
// "4096". Binary (KiB) and decimal (KB) suffixes are both accepted; the short
// forms k/m/g mean binary units, as in nginx and Varnish.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q: missing number", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: bad number", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB or KB, MB, GB)", s, unit)
	}
	v := f * mult
	if v > 1<<62 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(v), nil
}

// ParseDuration parses a Go duration ("90s", "1h30m") and also accepts days
// ("7d") and weeks ("2w") as Varnish does.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if n := len(t); n > 1 && (t[n-1] == 'd' || t[n-1] == 'w') {
		if f, err := strconv.ParseFloat(t[:n-1], 64); err == nil {
			day := 24 * time.Hour
			if t[n-1] == 'w' {
				day *= 7
			}
			if f < 0 {
				return 0, fmt.Errorf("duration %q: negative", s)
			}
			return time.Duration(f * float64(day)), nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("duration %q: use a number with a unit, e.g. 500ms, 30s, 2m, 1h, 7d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q: negative", s)
	}
	return d, nil
}
