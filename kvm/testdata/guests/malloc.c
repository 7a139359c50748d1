/* Allocates, fills, checks and frees in a loop, from tiny blocks to blocks
 * that malloc serves with mmap, with realloc growth (mremap) and calloc. With
 * argv[1] = "oom" it allocates until malloc fails and exits 3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long seed = 12345;
static unsigned long rnd(void) { return seed = seed * 6364136223846793005UL + 1442695040888963407UL; }

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "oom") == 0) {
		long n = 0;
		while (malloc(1 << 20) != NULL)
			n++;
		printf("oom after %ld MiB\n", n);
		return 3;
	}
	enum { slots = 64 };
	char *p[slots] = {0};
	size_t sz[slots] = {0};
	unsigned long sum = 0;
	for (int it = 0; it < 3000; it++) {
		int i = rnd() % slots;
		if (p[i]) {
			for (size_t k = 0; k < sz[i]; k += 97)
				if (p[i][k] != (char)(i + k)) {
					printf("corrupt block %d at %zu\n", i, k);
					return 1;
				}
			sum += sz[i];
			if (rnd() % 4 == 0 && sz[i] < (1 << 20)) {
				size_t nsz = sz[i] * 2 + 1;
				char *q = realloc(p[i], nsz);
				if (!q)
					return 2;
				for (size_t k = sz[i]; k < nsz; k++)
					q[k] = (char)(i + k);
				p[i] = q;
				sz[i] = nsz;
				continue;
			}
			free(p[i]);
			p[i] = NULL;
			continue;
		}
		size_t s = (rnd() % 8 == 0) ? 200000 + rnd() % 400000 : 1 + rnd() % 3000;
		char *c = calloc(1, s);
		if (!c)
			return 2;
		for (size_t k = 0; k < s; k++)
			if (c[k]) {
				printf("calloc not zero\n");
				return 1;
			}
		for (size_t k = 0; k < s; k++)
			c[k] = (char)(i + k);
		p[i] = c;
		sz[i] = s;
	}
	for (int i = 0; i < slots; i++)
		free(p[i]);
	printf("malloc ok %lu\n", sum);
	return 0;
}
