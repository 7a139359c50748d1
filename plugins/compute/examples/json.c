/* json is a small JSON API whose table is built in main(), before the
 * snapshot: /items lists the items, /items/N answers one, else 404. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgehost.h"

struct item {
  int id;
  char name[32];
  double price;
};

static char buf[16384];
static struct item *items;
static int nitems;
static char out[65536];

static void handle(const struct eh_request *req) {
  const char *p = eh_string(req, req->path);
  size_t n = req->path.len;
  int len = 0;
  if (eh_str_eq(req, req->path, "/items")) {
    len += snprintf(out + len, sizeof out - len, "[");
    for (int i = 0; i < nitems && len < (int)sizeof out - 128; i++)
      len += snprintf(out + len, sizeof out - len, "%s{\"id\":%d,\"name\":\"%s\",\"price\":%.2f}", i ? "," : "",
                      items[i].id, items[i].name, items[i].price);
    len += snprintf(out + len, sizeof out - len, "]");
  } else if (n > 7 && memcmp(p, "/items/", 7) == 0) {
    int id = 0;
    for (size_t i = 7; i < n && p[i] >= '0' && p[i] <= '9'; i++) id = id * 10 + (p[i] - '0');
    if (id < 1 || id > nitems) {
      eh_respond_simple(404, "application/json", "{\"error\":\"no such item\"}", 24);
      return;
    }
    struct item *it = &items[id - 1];
    len = snprintf(out, sizeof out, "{\"id\":%d,\"name\":\"%s\",\"price\":%.2f}", it->id, it->name, it->price);
  } else {
    eh_respond_simple(404, "application/json", "{\"error\":\"not found\"}", 21);
    return;
  }
  struct eh_response r;
  memset(&r, 0, sizeof r);
  r.status = 200;
  r.content_type = (uint64_t)(uintptr_t) "application/json";
  r.content_type_len = 16;
  r.body = (uint64_t)(uintptr_t)out;
  r.body_len = (uint64_t)len;
  r.ttl_ms = 60000; /* the table never changes: cacheable for a minute */
  r.grace_ms = 10000;
  eh_respond(&r);
}

int main(void) {
  static const char *names[] = {"apple", "banana", "cherry", "date", "elderberry", "fig", "grape"};
  nitems = 100;
  items = calloc((size_t)nitems, sizeof *items);
  for (int i = 0; i < nitems; i++) {
    items[i].id = i + 1;
    snprintf(items[i].name, sizeof items[i].name, "%s-%d", names[i % 7], i + 1);
    items[i].price = 0.25 * (i + 1);
  }
  if (eh_abi() == 0) {
    printf("json: not under edgehost; %d items built\n", nitems);
    return 0;
  }
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
