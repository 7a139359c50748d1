/* For the call benchmark: calls the host in a loop. */
#include "edgehost.h"

int main(void)
{
	long x = 0;
	for (;;)
		x = eh_call(EH_NOP, x, 0, 0);
}
