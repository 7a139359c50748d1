/* Prints to stdout and stderr, shows argv and one variable of envp, and
 * exits with the status named by argv[1] ("abort" aborts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	printf("hello, world\n");
	for (int i = 1; i < argc; i++)
		printf("arg %s\n", argv[i]);
	const char *g = getenv("GREETING");
	if (g)
		printf("env %s\n", g);
	fprintf(stderr, "to stderr\n");
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "abort") == 0)
		abort();
	return argc > 1 ? atoi(argv[1]) : 0;
}
