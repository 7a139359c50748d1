/*
 * edgehost.h — the guest ABI of edgehost's compute plugin, version 1.
 *
 * A program is a static x86-64 Linux ELF. It talks to edgehost with the
 * `syscall` instruction, with the Linux register convention: number in rax,
 * arguments in rdi, rsi, rdx, r10, r8, r9, the one result in rax (a negative
 * errno on failure). edgehost's numbers start at 0x10000, far from Linux's.
 * The same binary runs in a KVM guest (backend "kvm") or as a sandboxed
 * process (backend "process"); run directly on Linux every call returns
 * -ENOSYS, which eh_abi() turns into 0, so a program can tell it is not
 * sandboxed and run a self-test instead.
 *
 * Rules of the layouts: little-endian, explicit widths, sizes fixed by
 * _Static_assert, strings as (offset, length) pairs, reserved fields zero.
 * The host never allocates memory in the program: every call writes into
 * buffers the program passes.
 *
 * The pull loop: the program sets up in main(), then calls
 * eh_next_request(). Its first call is the snapshot point: every request
 * (with ephemeral = true) starts from the program as it was there.
 *
 * Freestanding: only <stdint.h> and <stddef.h>; no libc needed.
 */
#ifndef EDGEHOST_H
#define EDGEHOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EH_ABI_VERSION 1u

#ifdef __cplusplus
#define EH_STATIC_ASSERT static_assert
#else
#define EH_STATIC_ASSERT _Static_assert
#endif

/* Backends, in the high half of eh_abi()'s result. */
#define EH_BACKEND_KVM 1u
#define EH_BACKEND_PROCESS 2u

/* ---- call numbers ---- */
#define EH_CALL_ABI 0x10000      /* () -> (backend << 16) | version */
#define EH_CALL_NEXT 0x10001     /* (struct eh_request *buf, u64 cap, u64 sp) -> 0; buf->size may exceed cap */
#define EH_CALL_REQUEST 0x10002  /* (struct eh_request *buf, u64 cap) -> size: the current request again */
#define EH_CALL_READ 0x10003     /* (u64 handle, void *dst, u64 len, u64 off) -> bytes (0 = end) */
#define EH_CALL_RESPOND 0x10004  /* (const struct eh_response *r) -> 0 */
#define EH_CALL_FETCH 0x10005    /* (const struct eh_fetch *f, struct eh_fetch_result *r) -> handle > 0 */
#define EH_CALL_CLOSE 0x10006    /* (u64 handle) -> 0 */
#define EH_CALL_LOG 0x10007      /* (u64 level, const char *p, u64 len) -> 0 */
/* 0x10008..0x100ff are reserved for version 1; unknown numbers give -ENOSYS. */

/* Handles for EH_CALL_READ: 0 is the request body; fetches return others. */
#define EH_BODY 0u

/* errno values a program sees (Linux's). */
#define EH_ENOENT 2
#define EH_E2BIG 7
#define EH_EBADF 9
#define EH_ENOMEM 12
#define EH_EFAULT 14
#define EH_EINVAL 22
#define EH_ENOSYS 38
#define EH_ELOOP 40
#define EH_ETIMEDOUT 110

/* A string inside a struct eh_request: offset from the start of the struct. */
struct eh_str {
  uint32_t off, len;
};

struct eh_header {
  struct eh_str name, value;
};
EH_STATIC_ASSERT(sizeof(struct eh_header) == 16, "eh_header");

/* A request: a 128-byte head, then the strings and the header table. */
struct eh_request {
  uint32_t size;          /* bytes of the whole request (head + data) */
  uint16_t abi;           /* EH_ABI_VERSION */
  uint16_t flags;         /* EH_REQ_* */
  uint64_t id;            /* counts requests of this program instance */
  uint64_t body_len;      /* bytes of body, read with EH_CALL_READ(EH_BODY) */
  uint64_t time_left_ns;  /* what the request may still take, in ns, when delivered */
  struct eh_str method, url, path, query, host, tenant;
  uint32_t num_headers;   /* struct eh_header[num_headers] at headers_off */
  uint32_t headers_off;
  uint32_t depth;         /* self-request depth of this request */
  struct eh_str error;    /* EH_REQ_ERROR: why the request failed */
  uint32_t reserved[7];
};
EH_STATIC_ASSERT(sizeof(struct eh_request) == 128, "eh_request");

#define EH_REQ_HAS_BODY 0x1u
/* A second chance (the tenant's second_chance setting): the request below
 * failed (it ran out of time, or the program crashed) and the program,
 * reset to its snapshot, may answer it within 1 s instead; error says why.
 * Answering nothing (or failing again) leaves the original 500 or 504. */
#define EH_REQ_ERROR 0x4u

/* A response, passed to EH_CALL_RESPOND; pointers are the program's own. */
struct eh_response {
  uint16_t status;           /* 100..599 */
  uint16_t flags;            /* EH_RESP_* */
  uint32_t num_headers;      /* struct eh_iovec[num_headers], "Name: value" each */
  uint64_t headers;          /* const struct eh_iovec * */
  uint64_t content_type;     /* const char *, may be 0 */
  uint32_t content_type_len;
  uint32_t reserved0;
  uint64_t body;             /* const void * */
  uint64_t body_len;
  int64_t ttl_ms;            /* cacheable this long; -1: not cacheable (default) */
  int64_t grace_ms;          /* stale-while-revalidate; -1: none */
  uint64_t reserved[2];
};
EH_STATIC_ASSERT(sizeof(struct eh_response) == 80, "eh_response");

#define EH_RESP_NOCACHE 0x1u

struct eh_iovec {
  uint64_t ptr, len;
};
EH_STATIC_ASSERT(sizeof(struct eh_iovec) == 16, "eh_iovec");

/* A fetch. A path-only URL ("/img/cat.jpg") is a self-request through
 * edgehost, with the depth carried and checked. */
struct eh_fetch {
  uint64_t url;              /* const char * */
  uint32_t url_len;
  uint32_t method_len;       /* 0 = GET */
  uint64_t method;           /* const char * */
  uint64_t headers;          /* const struct eh_iovec *, "Name: value" each */
  uint32_t num_headers;
  uint32_t flags;
  uint64_t body, body_len;
  uint64_t timeout_ms;       /* 0 = the request's deadline */
  uint64_t reserved[2];
};
EH_STATIC_ASSERT(sizeof(struct eh_fetch) == 80, "eh_fetch");

struct eh_fetch_result {
  uint32_t status;
  uint32_t content_type_len;
  uint64_t body_len;         /* read with EH_CALL_READ(handle, ...) */
  char content_type[112];
};
EH_STATIC_ASSERT(sizeof(struct eh_fetch_result) == 128, "eh_fetch_result");

/* ---- the trap ---- */

static inline long eh_call(long n, long a, long b, long c, long d) {
  long r;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                   : "rcx", "r11", "memory");
  return r;
}

/* ---- helpers ---- */

/* eh_abi returns the ABI version the host speaks (0 when not sandboxed). */
static inline unsigned eh_abi(void) {
  long r = eh_call(EH_CALL_ABI, 0, 0, 0, 0);
  return r < 0 ? 0u : (unsigned)(r & 0xffff);
}

/* eh_backend returns EH_BACKEND_KVM or EH_BACKEND_PROCESS (0 when not sandboxed). */
static inline unsigned eh_backend(void) {
  long r = eh_call(EH_CALL_ABI, 0, 0, 0, 0);
  return r < 0 ? 0u : (unsigned)(r >> 16);
}

/* eh_next_request waits for the next request and copies it into buf. When
 * it does not fit (buf->size > cap), only cap bytes arrived: fetch it
 * again into a larger buffer with eh_request_again. Returns 0 or -errno.
 *
 * It is one out-of-line function that keeps the callee-saved registers on
 * the stack across the call and tells the host its stack pointer (the
 * third argument). That makes a reset exact on every backend: when the
 * host puts the program's memory back as it was at the snapshot, the
 * function returns to the snapshot's caller with the snapshot's registers.
 * Call it from one place (eh_serve does); a program that waits elsewhere
 * still works, but the process backend then starts a new process for
 * every request instead of resetting the one it has. */
__attribute__((naked, noinline, unused)) static long eh_next_request(struct eh_request *buf __attribute__((unused)),
                                                                     size_t cap __attribute__((unused))) {
  __asm__ volatile(
      "push %rbx\n\t"
      "push %rbp\n\t"
      "push %r12\n\t"
      "push %r13\n\t"
      "push %r14\n\t"
      "push %r15\n\t"
      "mov %rsp, %rdx\n\t"
      "mov $0x10001, %eax\n\t"
      "syscall\n\t"
      "pop %r15\n\t"
      "pop %r14\n\t"
      "pop %r13\n\t"
      "pop %r12\n\t"
      "pop %rbp\n\t"
      "pop %rbx\n\t"
      "ret\n\t");
}

static inline long eh_request_again(struct eh_request *buf, size_t cap) {
  return eh_call(EH_CALL_REQUEST, (long)buf, (long)cap, 0, 0);
}

/* eh_string returns a pointer to a request's string (not NUL-terminated). */
static inline const char *eh_string(const struct eh_request *r, struct eh_str s) {
  return (const char *)r + s.off;
}

static inline int eh_str_eq(const struct eh_request *r, struct eh_str s, const char *lit) {
  const char *p = eh_string(r, s);
  uint32_t i = 0;
  for (; i < s.len; i++)
    if (lit[i] == 0 || lit[i] != p[i]) return 0;
  return lit[i] == 0;
}

/* eh_header_get finds a request header by name (ASCII case-insensitive). */
static inline int eh_header_get(const struct eh_request *r, const char *name, struct eh_str *out) {
  const struct eh_header *h = (const struct eh_header *)((const char *)r + r->headers_off);
  for (uint32_t i = 0; i < r->num_headers; i++) {
    const char *n = eh_string(r, h[i].name);
    uint32_t j = 0;
    for (; j < h[i].name.len && name[j]; j++) {
      char a = n[j], b = name[j];
      if (a >= 'A' && a <= 'Z') a += 32;
      if (b >= 'A' && b <= 'Z') b += 32;
      if (a != b) break;
    }
    if (j == h[i].name.len && name[j] == 0) {
      *out = h[i].value;
      return 1;
    }
  }
  return 0;
}

/* eh_query_get finds a query parameter's raw value (not unescaped). */
static inline int eh_query_get(const struct eh_request *r, const char *key, const char **val, size_t *len) {
  const char *q = eh_string(r, r->query);
  size_t n = r->query.len, i = 0;
  while (i < n) {
    size_t s = i, k = 0;
    while (i < n && q[i] != '&' && q[i] != '=' && key[k] && q[i] == key[k]) i++, k++;
    if (key[k] == 0 && (i == n || q[i] == '=' || q[i] == '&')) {
      if (i < n && q[i] == '=') i++;
      size_t v = i;
      while (i < n && q[i] != '&') i++;
      *val = q + v;
      *len = i - v;
      return 1;
    }
    (void)s;
    while (i < n && q[i] != '&') i++;
    if (i < n) i++;
  }
  return 0;
}

/* eh_read reads the body of a handle (EH_BODY or a fetch) at off. */
static inline long eh_read(uint64_t handle, void *dst, size_t len, uint64_t off) {
  return eh_call(EH_CALL_READ, (long)handle, (long)dst, (long)len, (long)off);
}

static inline long eh_respond(const struct eh_response *r) {
  return eh_call(EH_CALL_RESPOND, (long)r, 0, 0, 0);
}

static inline size_t eh_strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

/* eh_respond_simple answers with a status, a content type and a body. */
static inline long eh_respond_simple(int status, const char *content_type, const void *body, size_t len) {
  struct eh_response r;
  __builtin_memset(&r, 0, sizeof r);
  r.status = (uint16_t)status;
  r.content_type = (uint64_t)(uintptr_t)content_type;
  r.content_type_len = content_type ? (uint32_t)eh_strlen(content_type) : 0;
  r.body = (uint64_t)(uintptr_t)body;
  r.body_len = len;
  r.ttl_ms = -1;
  r.grace_ms = -1;
  return eh_respond(&r);
}

/* eh_fetch_get fetches url (a path-only URL is a self-request) with GET. */
static inline long eh_fetch_get(const char *url, size_t url_len, struct eh_fetch_result *res) {
  struct eh_fetch f;
  __builtin_memset(&f, 0, sizeof f);
  f.url = (uint64_t)(uintptr_t)url;
  f.url_len = (uint32_t)url_len;
  return eh_call(EH_CALL_FETCH, (long)&f, (long)res, 0, 0);
}

static inline long eh_close(uint64_t handle) { return eh_call(EH_CALL_CLOSE, (long)handle, 0, 0, 0); }

static inline long eh_log(const char *p, size_t len) { return eh_call(EH_CALL_LOG, 0, (long)p, (long)len, 0); }

/* eh_serve is the usual loop: it calls handle for every request, with a
 * request buffer that grows when a request does not fit. buf must hold at
 * least 128 bytes; big may be 0 (requests that do not fit get 431). */
typedef void (*eh_handler)(const struct eh_request *req);
static inline void eh_serve(eh_handler handle, struct eh_request *buf, size_t cap, struct eh_request *big, size_t bigcap) {
  for (;;) {
    long r = eh_next_request(buf, cap);
    if (r < 0) return;
    const struct eh_request *req = buf;
    if (buf->size > cap) {
      if (big == 0 || buf->size > bigcap || eh_request_again(big, bigcap) < 0) {
        eh_respond_simple(431, "text/plain", "request too large", 17);
        continue;
      }
      req = big;
    }
    handle(req);
  }
}

#ifdef __cplusplus
}
#endif
#endif /* EDGEHOST_H */
