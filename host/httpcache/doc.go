// Package httpcache holds the HTTP caching semantics that edgehost's request
// state machine applies, as pure functions over headers and times:
//
//   - cachecontrol.go: a lenient Cache-Control parser (RFC 9111 §5.2,
//     RFC 5861, RFC 8246), as shared caches must be.
//   - freshness.go: a route's Policy; whether a response may be stored by
//     a shared cache (RFC 9111 §3), its freshness lifetime — explicit
//     (§4.2.1), heuristic (§4.2.2) or the route's default_ttl — and stale
//     windows (§4.2.4, RFC 5861), and its age (§4.2.3).
//   - targeted.go: targeted cache-control fields such as CDN-Cache-Control
//     (RFC 9213), Structured Fields Dictionaries (RFC 8941).
//   - date.go: HTTP-date, strictly (RFC 9110 §5.6.7).
//   - conditional.go: preconditions on a stored representation
//     (RFC 9110 §13.2.2) and If-Range (§13.1.5).
//   - validation.go: the header as stored (RFC 9111 §3.1, qualified
//     private and no-cache §5.2.2.4, §5.2.2.7), the conditional request to
//     the origin (§4.3.1), whether a 304 selects the stored response and
//     freshening it (§3.2, §4.3.4).
//   - range.go: byte ranges (RFC 9110 §14): parsing, 206 single and
//     multipart/byteranges responses, 416.
//   - vary.go: the secondary cache key (RFC 9111 §4.1).
//   - cachestatus.go: the Cache-Status response header (RFC 9211).
//
// Nothing here does I/O except ServeRanges and WriteUnsatisfiable, which
// write a response. The functions called on every cache hit (header parsing,
// conditionals, Vary, Cache-Status) avoid allocating; each has an Append form
// that writes into a caller-owned buffer where a result must be built.
package httpcache
