/* png draws a PNG from query parameters: w and h (pixels, 1..512,
 * default 64) and c (an RRGGBB colour, default 3366cc), a gradient of that
 * colour. The image is zlib with stored blocks: no compressor needed. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edgehost.h"

static char buf[16384];
static uint8_t img[512 * (512 * 3 + 1)];
static uint8_t out[sizeof img + sizeof img / 65535 * 5 + 4096];
static uint32_t crc_table[256];

static uint32_t crc(const uint8_t *p, size_t n, uint32_t c) {
  c = ~c;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

static uint8_t *be32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
  return p + 4;
}

/* chunk writes a PNG chunk whose data is already at p+8, len bytes. */
static uint8_t *chunk(uint8_t *p, const char *type, size_t len) {
  be32(p, (uint32_t)len);
  memcpy(p + 4, type, 4);
  return be32(p + 8 + len, crc(p + 4, len + 4, 0));
}

static long param(const struct eh_request *req, const char *key, long def, long lo, long hi, int base) {
  const char *v;
  size_t n;
  if (!eh_query_get(req, key, &v, &n) || n == 0) return def;
  long x = 0;
  for (size_t i = 0; i < n; i++) {
    int d = v[i] >= '0' && v[i] <= '9' ? v[i] - '0' : v[i] >= 'a' && v[i] <= 'f' ? v[i] - 'a' + 10 : v[i] >= 'A' && v[i] <= 'F' ? v[i] - 'A' + 10 : 99;
    if (d >= base) return def;
    x = x * base + d;
  }
  return x < lo ? lo : x > hi ? hi : x;
}

static void handle(const struct eh_request *req) {
  long w = param(req, "w", 64, 1, 512, 10), h = param(req, "h", 64, 1, 512, 10);
  long c = param(req, "c", 0x3366cc, 0, 0xffffff, 16);
  size_t row = (size_t)w * 3 + 1, raw = row * (size_t)h;
  for (long y = 0; y < h; y++) {
    uint8_t *r = img + (size_t)y * row;
    r[0] = 0;
    for (long x = 0; x < w; x++) {
      unsigned f = (unsigned)(255 * (x + y) / (w + h));
      r[1 + 3 * x] = (uint8_t)(((c >> 16) & 0xff) * f / 255);
      r[2 + 3 * x] = (uint8_t)(((c >> 8) & 0xff) * f / 255);
      r[3 + 3 * x] = (uint8_t)((c & 0xff) * f / 255);
    }
  }
  uint8_t *p = out;
  memcpy(p, "\x89PNG\r\n\x1a\n", 8);
  p += 8;
  uint8_t *d = p + 8;
  d = be32(d, (uint32_t)w);
  d = be32(d, (uint32_t)h);
  memcpy(d, "\x08\x02\x00\x00\x00", 5);
  p = chunk(p, "IHDR", 13);
  d = p + 8;
  uint8_t *start = d;
  *d++ = 0x78, *d++ = 0x01;
  uint32_t a = 1, b = 0;
  for (size_t off = 0; off < raw;) {
    size_t n = raw - off > 65535 ? 65535 : raw - off;
    *d++ = off + n == raw;
    *d++ = n & 0xff, *d++ = n >> 8, *d++ = ~n & 0xff, *d++ = (~n >> 8) & 0xff;
    memcpy(d, img + off, n);
    for (size_t i = 0; i < n; i++) a = (a + img[off + i]) % 65521, b = (b + a) % 65521;
    d += n, off += n;
  }
  d = be32(d, b << 16 | a);
  p = chunk(p, "IDAT", (size_t)(d - start));
  p = chunk(p, "IEND", 0);
  struct eh_response resp;
  memset(&resp, 0, sizeof resp);
  resp.status = 200;
  resp.content_type = (uint64_t)(uintptr_t) "image/png";
  resp.content_type_len = 9;
  resp.body = (uint64_t)(uintptr_t)out;
  resp.body_len = (uint64_t)(p - out);
  resp.ttl_ms = 300000;
  resp.grace_ms = -1;
  eh_respond(&resp);
}

int main(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
  if (eh_abi() == 0) {
    int ok = crc((const uint8_t *)"IEND", 4, 0) == 0xae426082;
    printf("png: not under edgehost; crc self-test %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
  }
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
