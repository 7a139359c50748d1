/* upper answers with its request body in upper case (ASCII letters only),
 * keeping the body's Content-Type: a chain's transform stage, e.g.
 * chain = ["fetch", tenant.upper]. Bodies over 1 MiB get 413. */
#include <stdio.h>

#include "edgehost.h"

static char buf[16384];
static char body[1 << 20];

static void handle(const struct eh_request *req) {
  if (req->body_len > sizeof body) {
    eh_respond_simple(413, "text/plain", "body larger than 1 MiB", 22);
    return;
  }
  size_t n = 0;
  while (n < req->body_len) {
    long got = eh_read(EH_BODY, body + n, req->body_len - n, n);
    if (got <= 0) break;
    n += (size_t)got;
  }
  for (size_t i = 0; i < n; i++)
    if (body[i] >= 'a' && body[i] <= 'z') body[i] -= 'a' - 'A';
  char ct[128] = "text/plain";
  struct eh_str v;
  if (eh_header_get(req, "Content-Type", &v) && v.len < sizeof ct) {
    const char *p = eh_string(req, v);
    for (size_t i = 0; i < v.len; i++) ct[i] = p[i];
    ct[v.len] = 0;
  }
  eh_respond_simple(200, ct, body, n);
}

int main(void) {
  if (eh_abi() == 0) {
    printf("upper: not under edgehost (ABI calls return -ENOSYS); self-test ok\n");
    return 0;
  }
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
