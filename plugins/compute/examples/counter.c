/* counter proves that each request starts from the snapshot: a global set
 * to 0 in main(), plus one per request. Ephemeral tenants answer 1 every
 * time; kept ones 1, 2, 3… */
#include <stdio.h>

#include "edgehost.h"

static char buf[16384];
static long counter = -1;

static void handle(const struct eh_request *req) {
  (void)req;
  char out[32];
  counter++;
  int n = snprintf(out, sizeof out, "%ld", counter);
  eh_respond_simple(200, "text/plain", out, (size_t)n);
}

int main(void) {
  counter = 0;
  if (eh_abi() == 0) {
    printf("counter: not under edgehost\n");
    return 0;
  }
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
