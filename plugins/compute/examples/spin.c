/* spin loops forever inside every request: for request time limits. On
 * a second chance (EH_REQ_ERROR) it answers 503 "spin gave up: WHY". */
#include <stdio.h>

#include "edgehost.h"

static char buf[4096];
static volatile unsigned long spins;

static void handle(const struct eh_request *req) {
  if (req->flags & EH_REQ_ERROR) {
    char out[512];
    int n = snprintf(out, sizeof out, "spin gave up: %.*s", (int)req->error.len, eh_string(req, req->error));
    if (n > (int)sizeof out) n = sizeof out;
    eh_respond_simple(503, "text/plain", out, (size_t)n);
    return;
  }
  for (;;) spins++;
}

int main(void) {
  if (eh_abi() == 0) return 0;
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
