/* For the reset benchmark: each request writes to EH_ARG pages. */
#include "edgehost.h"

static char buf[1024 * 4096] __attribute__((aligned(4096)));

int main(void)
{
	for (;;) {
		eh_call(EH_WAIT, 0, 0, 0);
		long k = eh_call(EH_ARG, 0, 0, 0);
		for (long i = 0; i < k && i < 1024; i++)
			buf[i * 4096] ^= 1;
	}
}
