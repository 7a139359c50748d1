/* hello answers every request with "hello from PATH". */
#include <stdio.h>
#include <string.h>

#include "edgehost.h"

static char buf[16384];
static char out[4096];

static void handle(const struct eh_request *req) {
  int n = snprintf(out, sizeof out, "hello from %.*s", (int)req->path.len, eh_string(req, req->path));
  if (n > (int)sizeof out) n = sizeof out;
  eh_respond_simple(200, "text/plain", out, (size_t)n);
}

int main(void) {
  if (eh_abi() == 0) {
    /* Not sandboxed: a self-test of what can be checked without a host. */
    printf("hello: not under edgehost (ABI calls return -ENOSYS); self-test ok\n");
    return 0;
  }
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
