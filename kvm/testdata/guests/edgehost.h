/* The calls the kvm package's tests hand to their Handler (numbers from
 * 0x10000 up go to the embedder, not to Linux emulation). */
#ifndef EDGEHOST_TEST_H
#define EDGEHOST_TEST_H

#define EH_WAIT  0x10000 /* pause: wait for the next request */
#define EH_ARG   0x10001 /* returns the request's numeric argument */
#define EH_WRITE 0x10002 /* (buf, len): append to the response */
#define EH_READ  0x10003 /* (buf, len): copy the request's bytes, returns n */
#define EH_NOP   0x10004 /* (x): returns x + 1 */

static inline long eh_call(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long eh_write(const char *s, long n) { return eh_call(EH_WRITE, (long)s, n, 0); }

#endif
