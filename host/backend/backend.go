// Package backend sends requests to HTTP origins for the request state
// machine: one Backend per `backend` block of the config.
//
// A Backend owns one http.Transport (a keep-alive pool of HTTP/1.1
// connections to its origin, over TCP or a Unix socket) and enforces the
// three Varnish-style timeouts:
//
//	connect        net.Dialer timeout                         → ErrConnect (502)
//	first byte     request written → response header arrived  → ErrFirstByteTimeout (504)
//	between bytes  each Read of the body waiting for the origin → ErrBetweenBytesTimeout (504)
//
// An optional health probe (Varnish's sliding window) marks the origin sick;
// a sick origin is not tried (ErrUnhealthy, 503), nor is one that already has
// MaxConns requests in flight (ErrTooManyConns, 503). A body that ends before
// its declared length (Content-Length, or a chunked body without its last
// chunk) reports ErrTruncated, so the cache never stores it; a body delimited
// by the close of the connection (HTTP/1.0 style) cannot be checked.
// StatusFor turns any of these errors into the status the client gets.
//
// Lifecycle: New (validates, no side effects) → Start (probe goroutine) →
// Do … → Close (stops the probe, drops idle connections).
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one origin.
type Config struct {
	Name string
	// URL is http://host:port[/base-path], or unix:///path/to.sock for an
	// origin on a Unix socket. A base path is prefixed to every request
	// path. https is not supported (yet).
	URL string
	// HostHeader, when set, replaces the client's Host on requests to the
	// origin; "" keeps the client's Host (the URL's host when there is none).
	HostHeader string
	// Timeouts, with Varnish's defaults: ConnectTimeout 3s (Varnish 3.5s),
	// FirstByteTimeout 30s (Varnish 60s; 30s is what CDNs commonly use),
	// BetweenBytesTimeout 10s (Varnish 60s; a stalled origin should free
	// its client sooner). Zero means the default.
	ConnectTimeout, FirstByteTimeout, BetweenBytesTimeout time.Duration
	// MaxConns bounds the requests in flight to the origin (each holds one
	// connection); past it Do fails with ErrTooManyConns. 0 = unlimited.
	MaxConns int
	// IdleConns is the size of the keep-alive pool; default 64.
	IdleConns int
	// IdleTimeout closes pooled connections unused this long; default 30s,
	// below the keep-alive timeout of common origins (nginx 75s) so that
	// edgehost, not the origin, closes an idle connection.
	IdleTimeout time.Duration
	// Probe, when set, enables the health probe; nil = always healthy.
	Probe *Probe
	// FetchObserver, when set, receives the seconds from sending each
	// request to the origin to its response header (or the transport's
	// error); Errors, when set, counts what Stats counts as Errors. The
	// host passes its edgehost_origin_* series (host/observe), resolved
	// for this backend, so a fetch only adds to them.
	FetchObserver Observer
	Errors        Counter
}

// Observer receives measurements (a prometheus.Observer is one).
type Observer interface{ Observe(float64) }

// Counter counts events (a prometheus.Counter is one).
type Counter interface{ Inc() }

// Defaults of Config.
const (
	DefaultConnectTimeout      = 3 * time.Second
	DefaultFirstByteTimeout    = 30 * time.Second
	DefaultBetweenBytesTimeout = 10 * time.Second
	DefaultIdleConns           = 64
	DefaultIdleTimeout         = 30 * time.Second

	// MaxResponseHeaderBytes bounds the status line and header of an
	// origin's response (Varnish allows 32 KiB; some origins send large
	// Set-Cookie or Content-Security-Policy fields). Past it Do fails with
	// ErrFetch.
	MaxResponseHeaderBytes = 128 << 10
)

// Backend is one origin. Its methods are safe for concurrent use.
type Backend struct {
	name        string
	logger      *slog.Logger
	scheme      string // always "http" for now
	host        string // URL host (host:port), or "localhost" for a Unix socket
	basePath    string // without trailing slash; "" for none
	baseRawPath string // escaped form of basePath
	hostHeader  string
	defaultHost string // Host when the client's is empty: hostHeader or host
	unixPath    string // "" for TCP
	betweenByte time.Duration
	maxConns    int64
	probe       Probe // valid only when hasProbe
	hasProbe    bool
	probePath   string // probe.Path split at "?"
	probeQuery  string

	fetchObs       Observer // nil: not measured
	errCount       Counter  // nil: not counted
	transport      *http.Transport
	probeTransport *http.Transport
	dialer         net.Dialer

	healthy  atomic.Bool
	closed   atomic.Bool
	inflight atomic.Int64
	requests atomic.Int64
	errs     atomic.Int64
	conns    atomic.Int64

	mu      sync.Mutex
	lastErr string
	started bool
	cancel  context.CancelFunc // stops the probe; nil until Start
	wg      sync.WaitGroup
}

// New validates cfg and returns a Backend; it opens nothing (no
// connection, no goroutine) until Start and Do. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Backend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		return nil, errors.New("backend: name is empty")
	}
	b := &Backend{name: cfg.Name, logger: logger, scheme: "http", hostHeader: cfg.HostHeader,
		fetchObs: cfg.FetchObserver, errCount: cfg.Errors}
	if err := b.parseURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	b.defaultHost = b.host
	if cfg.HostHeader != "" {
		b.defaultHost = cfg.HostHeader
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"connect timeout", &cfg.ConnectTimeout, DefaultConnectTimeout},
		{"first byte timeout", &cfg.FirstByteTimeout, DefaultFirstByteTimeout},
		{"between bytes timeout", &cfg.BetweenBytesTimeout, DefaultBetweenBytesTimeout},
		{"idle timeout", &cfg.IdleTimeout, DefaultIdleTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("backend %s: %s %v must be positive", cfg.Name, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxConns < 0 {
		return nil, fmt.Errorf("backend %s: max connections %d must not be negative", cfg.Name, cfg.MaxConns)
	}
	if cfg.IdleConns < 0 {
		return nil, fmt.Errorf("backend %s: idle connections %d must not be negative", cfg.Name, cfg.IdleConns)
	}
	if cfg.IdleConns == 0 {
		cfg.IdleConns = DefaultIdleConns
	}
	if cfg.Probe != nil {
		p, err := cfg.Probe.withDefaults()
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
		}
		b.probe, b.hasProbe = p, true
		b.probePath, b.probeQuery, _ = strings.Cut(p.Path, "?")
	}
	b.betweenByte = cfg.BetweenBytesTimeout
	b.maxConns = int64(cfg.MaxConns)
	b.healthy.Store(true)
	b.dialer = net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}

	b.transport = &http.Transport{
		Proxy:                  nil, // never a proxy from the environment
		DialContext:            b.dialCounted,
		MaxIdleConns:           cfg.IdleConns,
		MaxIdleConnsPerHost:    cfg.IdleConns,
		MaxConnsPerHost:        cfg.MaxConns,
		IdleConnTimeout:        cfg.IdleTimeout,
		ResponseHeaderTimeout:  cfg.FirstByteTimeout,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		// The proxy passes Accept-Encoding and Content-Encoding through
		// untouched: no transparent gzip.
		DisableCompression: true,
		// HTTP/1.1 only; origins speak h2 only over TLS, which is not
		// supported yet.
		ForceAttemptHTTP2: false,
	}
	// Probes use a fresh connection each (as Varnish does), so a probe
	// also checks that the origin still accepts connections; they do not
	// count against MaxConns or ConnsOpen.
	b.probeTransport = &http.Transport{
		Proxy:                  nil,
		DialContext:            b.dial,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
	return b, nil
}

// parseURL fills scheme, host, base path and unix path from raw.
func (b *Backend) parseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("url %q: must not have user info, query or fragment", raw)
	}
	switch u.Scheme {
	case "http":
		if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
			return fmt.Errorf("url %q: no host", raw)
		}
		if p := u.Port(); p != "" {
			if _, err := net.LookupPort("tcp", p); err != nil {
				return fmt.Errorf("url %q: bad port: %w", raw, err)
			}
		}
		b.host = u.Host
		if u.Path != "" && u.Path != "/" {
			b.basePath = strings.TrimSuffix(u.Path, "/")
			b.baseRawPath = strings.TrimSuffix(u.EscapedPath(), "/")
		}
	case "unix":
		path := u.Path
		if u.Opaque != "" {
			path = u.Opaque // unix:relative.sock
		}
		if u.Host != "" || path == "" {
			return fmt.Errorf("url %q: want unix:///path/to.sock", raw)
		}
		b.unixPath = path
		b.host = "localhost"
	case "https":
		return fmt.Errorf("url %q: https origins are not supported", raw)
	default:
		return fmt.Errorf("url %q: scheme must be http or unix", raw)
	}
	return nil
}

// Name returns the backend's name from the config.
func (b *Backend) Name() string { return b.name }

// Healthy reports the probe's verdict (always true without a probe).
func (b *Backend) Healthy() bool { return b.healthy.Load() }

// Start starts the health probe, if one is configured; it runs until ctx
// ends or Close. A second Start, or a Start after Close, does nothing.
func (b *Backend) Start(ctx context.Context) {
	if !b.hasProbe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed.Load() {
		return
	}
	b.started = true
	ctx, b.cancel = context.WithCancel(ctx)
	b.wg.Add(1)
	go b.probeLoop(ctx)
}

// Close stops the probe and closes idle connections. Responses in flight
// keep their connections until their bodies are closed; later calls of Do
// fail with ErrClosed. Close is idempotent.
func (b *Backend) Close() error {
	b.closed.Store(true)
	b.mu.Lock()
	if b.cancel != nil {
		b.cancel()
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.transport.CloseIdleConnections()
	b.probeTransport.CloseIdleConnections()
	return nil
}

// Stats is a snapshot of a backend's counters.
type Stats struct {
	Requests  int64  // calls of Do
	Errors    int64  // failed calls of Do, and bodies that failed while read
	ConnsOpen int64  // connections to the origin open now (pooled or busy)
	Healthy   bool   // the probe's verdict
	LastError string // the text of the last error, "" if none
}

// Stats returns the backend's counters.
func (b *Backend) Stats() Stats {
	b.mu.Lock()
	last := b.lastErr
	b.mu.Unlock()
	return Stats{
		Requests:  b.requests.Load(),
		Errors:    b.errs.Load(),
		ConnsOpen: b.conns.Load(),
		Healthy:   b.healthy.Load(),
		LastError: last,
	}
}

// Do sends req to the origin and returns its response; the caller must
// close the response body.
//
// req is the client's request or one derived from it: only its Method,
// URL.Path/RawPath/RawQuery, Host, Header, Body, ContentLength, Trailer and
// RemoteAddr are used, and none of them is modified (the body is read and
// closed, as by any http.RoundTripper); ctx (not
// req.Context()) governs the whole exchange, body included. The request to
// the origin gets the scheme and host of the backend's URL with the base path
// prefixed, Host from the config's HostHeader or else the client, no
// hop-by-hop fields (RFC 9110 §7.6.1, including those that Connection names),
// the client's IP appended to X-Forwarded-For and "1.1 edgehost" to Via. The
// response comes back with its hop-by-hop fields removed and with
// Content-Encoding untouched.
//
// Errors are *Error values that match the package's sentinels (or a context
// error) with errors.Is; so are the errors of the response body's Read:
// ErrBetweenBytesTimeout when the origin stalls, ErrTruncated when the body
// ends before its declared length (the transport's io.ErrUnexpectedEOF).
// Redirects are returned, never followed.
func (b *Backend) Do(ctx context.Context, req *http.Request) (*http.Response, error) {
	b.requests.Add(1)
	if b.closed.Load() {
		return nil, b.fail(&Error{Backend: b.name, Kind: ErrClosed})
	}
	if !b.healthy.Load() {
		return nil, b.fail(&Error{Backend: b.name, Kind: ErrUnhealthy})
	}
	if b.maxConns > 0 {
		if b.inflight.Add(1) > b.maxConns {
			b.inflight.Add(-1)
			return nil, b.fail(&Error{Backend: b.name, Kind: ErrTooManyConns,
				Err: fmt.Errorf("%d requests in flight", b.maxConns)})
		}
	}

	start := time.Now()
	resp, err := b.transport.RoundTrip(b.outgoing(ctx, req))
	if b.fetchObs != nil {
		b.fetchObs.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		b.release()
		return nil, b.fail(b.classify(ctx, err))
	}
	removeHopByHop(resp.Header)
	if resp.Body == nil || resp.Body == http.NoBody {
		b.release()
		return resp, nil
	}
	resp.Body = newBody(resp.Body, b, ctx)
	return resp, nil
}

// outgoing builds the request to the origin from the client's request.
func (b *Backend) outgoing(ctx context.Context, req *http.Request) *http.Request {
	var path, rawPath, query string
	if req.URL != nil {
		path, rawPath, query = req.URL.Path, req.URL.RawPath, req.URL.RawQuery
	}
	h := forwardHeader(req.Header, req.RemoteAddr)
	host := b.hostHeader
	if host == "" {
		host = req.Host
		if host == "" {
			host = b.defaultHost
		}
	}
	out := &http.Request{
		Method:        req.Method,
		URL:           b.target(path, rawPath, query),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Host:          host,
		Body:          req.Body,
		ContentLength: req.ContentLength,
		Trailer:       req.Trailer,
	}
	if out.Method == "" {
		out.Method = http.MethodGet
	}
	if out.Body == http.NoBody {
		out.Body = nil
		out.ContentLength = 0
	}
	return out.WithContext(ctx)
}

// target is the origin URL of a request path: the backend's scheme and host,
// the base path prefixed.
func (b *Backend) target(path, rawPath, query string) *url.URL {
	if path == "" {
		path = "/"
	}
	u := &url.URL{Scheme: b.scheme, Host: b.host, Path: path, RawPath: rawPath, RawQuery: query}
	if b.basePath != "" {
		u.Path = b.basePath + path
		if rawPath != "" {
			u.RawPath = b.baseRawPath + rawPath
		} else if b.baseRawPath != b.basePath {
			u.RawPath = b.baseRawPath + (&url.URL{Path: path}).EscapedPath()
		}
	}
	return u
}

// classify wraps an error of RoundTrip in an *Error of the right kind.
func (b *Backend) classify(ctx context.Context, err error) error {
	var e *Error
	switch {
	case ctx.Err() != nil:
		return &Error{Backend: b.name, Kind: ctx.Err(), Err: err}
	case errors.As(err, &e):
		return err // from dialCounted: ErrConnect
	case isTimeout(err):
		// The only timeout RoundTrip has besides the dial's is
		// ResponseHeaderTimeout.
		return &Error{Backend: b.name, Kind: ErrFirstByteTimeout, Err: err}
	default:
		return &Error{Backend: b.name, Kind: ErrFetch, Err: err}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fail counts err and remembers it as the last error.
func (b *Backend) fail(err error) error {
	b.errs.Add(1)
	if b.errCount != nil {
		b.errCount.Inc()
	}
	s := err.Error()
	b.mu.Lock()
	b.lastErr = s
	b.mu.Unlock()
	return err
}

// release frees the request's MaxConns slot.
func (b *Backend) release() {
	if b.maxConns > 0 {
		b.inflight.Add(-1)
	}
}

// dial opens a connection to the origin: TCP to addr, or the Unix socket.
func (b *Backend) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if b.unixPath != "" {
		network, addr = "unix", b.unixPath
	}
	c, err := b.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &Error{Backend: b.name, Kind: ErrConnect, Err: err}
	}
	return c, nil
}

// dialCounted is dial for the main pool, counting open connections.
func (b *Backend) dialCounted(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := b.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	b.conns.Add(1)
	return &countedConn{Conn: c, b: b}, nil
}

// countedConn decrements the backend's open connection count once, on Close.
type countedConn struct {
	net.Conn
	b      *Backend
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.b.conns.Add(-1)
	}
	return c.Conn.Close()
}
