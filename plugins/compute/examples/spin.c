/* spin loops forever inside every request: for request time limits. */
#include "edgehost.h"

static char buf[4096];
static volatile unsigned long spins;

static void handle(const struct eh_request *req) {
  (void)req;
  for (;;) spins++;
}

int main(void) {
  if (eh_abi() == 0) return 0;
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
