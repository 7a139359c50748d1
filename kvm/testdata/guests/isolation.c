/* Serves requests: each reports what it finds left over from earlier ones
 * (globals, heap, a fresh mmap, the brk, TLS, an SSE register) and then
 * scribbles over all of it. After a reset the report must be the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "edgehost.h"

static int counter;            /* .bss */
static char data[8192] = {[100] = 1}; /* .data */
static __thread int tls;       /* TLS through FS */

int main(void)
{
	char *heap = malloc(100000);
	char *big = malloc(2 << 20); /* mmap'd by malloc */
	memset(heap, 0, 100000);
	memset(big, 0, 2 << 20);
	char out[512];
	for (;;) {
		eh_call(EH_WAIT, 0, 0, 0);
		char *m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		float xmm;
		__asm__ volatile("movss %%xmm7, %0" : "=m"(xmm));
		int n = snprintf(out, sizeof out,
				 "counter=%d data=%d heap=%d big=%d tls=%d mmap=%p first=%d brk=%p xmm7=%g arg=%ld",
				 counter, data[100], heap[5000], big[1 << 20], tls, (void *)m, m[100],
				 sbrk(0), xmm, eh_call(EH_ARG, 0, 0, 0));
		eh_write(out, n);
		counter++;
		data[100] = 77;
		heap[5000] = 9;
		big[1 << 20] = 5;
		tls = 11;
		m[100] = 3;
		sbrk(1 << 16);
		xmm = 2.5f;
		__asm__ volatile("movss %0, %%xmm7" ::"m"(xmm));
	}
}
