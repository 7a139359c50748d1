/* fetch self-requests the path in the query parameter src and answers
 * "len=N sha256=HEX" of the body it got; a fetched status other than 200
 * is answered as is. With no src it fetches its own URL: a loop, on
 * purpose, that the host's depth limit must stop. */
#include <stdio.h>
#include <string.h>

#include "edgehost.h"
#include "sha256.h"

static char buf[16384];
static char chunk[65536];

static void handle(const struct eh_request *req) {
  const char *src;
  size_t srclen;
  if (!eh_query_get(req, "src", &src, &srclen)) {
    src = eh_string(req, req->url);
    srclen = req->url.len;
  }
  struct eh_fetch_result res;
  long h = eh_fetch_get(src, srclen, &res);
  if (h < 0) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "fetch failed: %ld", h);
    eh_respond_simple(502, "text/plain", msg, (size_t)n);
    return;
  }
  if (res.status != 200) {
    eh_close((uint64_t)h);
    eh_respond_simple((int)res.status, "text/plain", "", 0);
    return;
  }
  struct sha256 s;
  sha256_init(&s);
  uint64_t off = 0;
  for (;;) {
    long n = eh_read((uint64_t)h, chunk, sizeof chunk, off);
    if (n <= 0) break;
    sha256_update(&s, chunk, (size_t)n);
    off += (uint64_t)n;
  }
  eh_close((uint64_t)h);
  char hex[65], out[128];
  sha256_hex(&s, hex);
  int n = snprintf(out, sizeof out, "len=%llu sha256=%s", (unsigned long long)off, hex);
  eh_respond_simple(200, "text/plain", out, (size_t)n);
}

int main(void) {
  if (eh_abi() == 0) {
    struct sha256 s;
    char hex[65];
    sha256_init(&s);
    sha256_update(&s, "abc", 3);
    sha256_hex(&s, hex);
    int ok = strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0;
    printf("fetch: not under edgehost; sha256 self-test %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
  }
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
