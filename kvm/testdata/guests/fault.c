/* Waits for a request, then faults the way EH_ARG says; 0 exits cleanly. */
#include "edgehost.h"

/* Recurses with 64 KiB frames until the stack runs out. */
static long deep(long n)
{
	volatile char frame[65536];
	frame[0] = (char)n;
	return deep(n + 1) + frame[0];
}

int main(void)
{
	eh_call(EH_WAIT, 0, 0, 0);
	switch (eh_call(EH_ARG, 0, 0, 0)) {
	case 0:
		return 0;
	case 1: /* a wild pointer above guest memory */
		*(volatile long *)0x7ff000000000UL = 42;
		break;
	case 2: /* NULL */
		return *(volatile int *)0;
	case 3: /* the ring-0 area: mapped, supervisor only */
		*(volatile long *)0x1000 = 1;
		break;
	case 4:
		__asm__ volatile("ud2");
		break;
	case 5: { /* divide by zero */
		volatile int z = 0;
		return 10 / z;
	}
	case 6: /* a non-canonical address: general protection */
		return *(volatile int *)0x8000000000000000UL;
	case 7: /* privileged instruction in ring 3 */
		__asm__ volatile("hlt");
		break;
	case 8: /* port I/O in ring 3 */
		__asm__ volatile("outb %%al, $0xe0" ::"a"(0));
		break;
	case 10:
		return (int)deep(0);
	case 11: /* reading the syscall doorbell: outside guest memory */
		return *(volatile int *)0x10000;
	case 12: /* the syscall gate is read-only */
		*(volatile char *)0xf000 = 0;
		break;
	case 13: { /* jump to the gate with hostile flags in R11: a plain call
		    * whose return keeps CF and drops IOPL and NT */
		long rax = EH_NOP, flags;
		__asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
				 "mov $0x7003, %%r11\n\t"
				 "jmp *%[gate]\n"
				 "1:\tpushfq\n\t"
				 "pop %[flags]"
				 : "+a"(rax), [flags] "=r"(flags)
				 : "D"(41L), [gate] "r"(0xf000L)
				 : "rcx", "r11", "memory", "cc");
		return rax == 42 && (flags & 0x7000) == 0 && (flags & 1) ? 0 : 1;
	}
	case 9: /* handler given pointers outside memory: it must refuse */
		return eh_call(EH_WRITE, 0x7ff000000000L, 100, 0) == -14 &&
		       eh_call(EH_WRITE, -4096L, 8192, 0) == -14 ? 0 : 1;
	}
	return 99;
}
