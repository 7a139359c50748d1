/* Waits for a request, then spins forever: the run must time out. */
#include "edgehost.h"

int main(void)
{
	eh_call(EH_WAIT, 0, 0, 0);
	volatile unsigned long x = 0;
	for (;;)
		x++;
}
