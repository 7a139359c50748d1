/* Exercises the emulated Linux calls and prints what it saw; the test
 * compares. Exits with the number of failed checks. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

static int fails;
#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #c); fails++; } } while (0)

int main(void)
{
	struct utsname u;
	CHECK(uname(&u) == 0 && strcmp(u.sysname, "Linux") == 0 && strcmp(u.machine, "x86_64") == 0);
	struct timespec a, b;
	CHECK(clock_gettime(CLOCK_MONOTONIC, &a) == 0);
	CHECK(clock_gettime(CLOCK_MONOTONIC, &b) == 0);
	CHECK(b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec >= a.tv_nsec));
	CHECK(clock_gettime(CLOCK_REALTIME, &a) == 0 && a.tv_sec > 1600000000);
	CHECK(clock_gettime(12345, &a) == -1 && errno == EINVAL);
	unsigned char r1[32] = {0}, r2[32] = {0};
	CHECK(getrandom(r1, sizeof r1, 0) == 32 && getrandom(r2, sizeof r2, 0) == 32);
	CHECK(memcmp(r1, r2, 32) != 0);
	char exe[64] = {0};
	CHECK(readlink("/proc/self/exe", exe, sizeof exe - 1) > 0 && strcmp(exe, "/bin/sys") == 0);
	CHECK(readlink("/etc/passwd", exe, sizeof exe) == -1 && errno == ENOENT);
	struct rlimit rl;
	CHECK(getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur == 1 << 20);
	char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED && m[0] == 0 && m[3 * 4096 - 1] == 0);
	m[0] = 1;
	CHECK(munmap(m, 3 * 4096) == 0);
	char *m2 = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m2 == m && m2[0] == 0); /* reused, and zero again */
	char *m3 = mremap(m2, 3 * 4096, 64 * 4096, MREMAP_MAYMOVE);
	CHECK(m3 != MAP_FAILED && m3[0] == 0 && m3[64 * 4096 - 1] == 0);
	CHECK(mmap(NULL, 1UL << 40, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == ENOMEM);
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, 3, 0) == MAP_FAILED);
	CHECK(mprotect(m3, 4096, PROT_READ) == 0);
	void *b0 = sbrk(0);
	CHECK(sbrk(8192) == b0 && sbrk(0) == (char *)b0 + 8192);
	CHECK(write(7, "x", 1) == -1 && errno == EBADF);
	char *volatile bad = (char *)0x10;
	CHECK(write(1, bad, 1) == -1 && errno == EFAULT);
	CHECK(syscall(999) == -1 && errno == ENOSYS);
	CHECK(syscall(SYS_rseq, 0, 0, 0, 0) == -1 && errno == ENOSYS);
	CHECK(getpid() == 1);
	printf("sys checks done, %d failed\n", fails);
	return fails;
}
