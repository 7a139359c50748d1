/* hostile tries what a program must not be able to do, one thing per path,
 * and answers what it got: the sandbox's tests call it.
 *   /fork /open /socket /exec /kill  -> "NAME=RESULT errno=E" (kill: a probe of pid 2)
 *   /malloc   allocates and touches 1 MiB blocks until refused -> "malloc=N"
 *   /crash    writes through a null pointer
 *   /loop     never answers
 *   /exit     exits the program
 *   /stdout   prints a line and answers "ok"
 *   /env      answers "argv=A,B,… X=$X"                    */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edgehost.h"

static char buf[16384];
static char out[256];
static int argc_;
static char **argv_;

static void answer(const char *name, long r) {
  int n = snprintf(out, sizeof out, "%s=%ld errno=%d", name, r, r < 0 ? errno : 0);
  eh_respond_simple(200, "text/plain", out, (size_t)n);
}

static void handle(const struct eh_request *req) {
  errno = 0;
  if (eh_str_eq(req, req->path, "/fork")) {
    long r = fork();
    if (r == 0) _exit(0);
    answer("fork", r);
  } else if (eh_str_eq(req, req->path, "/open")) {
    answer("open", open("/etc/passwd", O_RDONLY));
  } else if (eh_str_eq(req, req->path, "/socket")) {
    answer("socket", socket(AF_INET, SOCK_STREAM, 0));
  } else if (eh_str_eq(req, req->path, "/exec")) {
    char *argv[] = {"/bin/sh", 0};
    answer("exec", execve("/bin/sh", argv, 0));
  } else if (eh_str_eq(req, req->path, "/kill")) {
    answer("kill", kill(2, 0)); /* a probe of another process: harmless if it ever passed */
  } else if (eh_str_eq(req, req->path, "/malloc")) {
    long n = 0;
    for (;;) {
      char *p = malloc(1 << 20);
      if (!p) break;
      memset(p, 1, 1 << 20);
      n++;
    }
    answer("malloc", n);
  } else if (eh_str_eq(req, req->path, "/crash")) {
    *(volatile int *)0 = 1;
  } else if (eh_str_eq(req, req->path, "/loop")) {
    for (;;) __asm__ volatile("");
  } else if (eh_str_eq(req, req->path, "/exit")) {
    exit(3);
  } else if (eh_str_eq(req, req->path, "/env")) {
    int n = snprintf(out, sizeof out, "argv=");
    for (int i = 0; i < argc_ && n < (int)sizeof out; i++)
      n += snprintf(out + n, sizeof out - n, "%s%s", i ? "," : "", argv_[i]);
    const char *x = getenv("X");
    if (n < (int)sizeof out) n += snprintf(out + n, sizeof out - n, " X=%s", x ? x : "");
    if (n > (int)sizeof out) n = sizeof out;
    eh_respond_simple(200, "text/plain", out, (size_t)n);
  } else if (eh_str_eq(req, req->path, "/stdout")) {
    printf("hostile: a line on stdout\n");
    fflush(stdout);
    eh_respond_simple(200, "text/plain", "ok", 2);
  } else {
    eh_respond_simple(404, "text/plain", "no such test", 12);
  }
}

int main(int argc, char **argv) {
  argc_ = argc;
  argv_ = argv;
  if (eh_abi() == 0) return 0;
  eh_serve(handle, (struct eh_request *)buf, sizeof buf, 0, 0);
  return 1;
}
