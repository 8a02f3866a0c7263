/* Prints its pid, then per argv[1]: "read" blocks reading stdin and exits with the byte it got; "loop"
 * makes getppid() calls forever; "pause" sleeps in pause(). For attach/detach and kill tests. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	printf("%d\n", getpid());
	fflush(stdout);
	if (argc > 1 && !strcmp(argv[1], "read")) {
		unsigned char c = 0;
		if (read(0, &c, 1) != 1)
			return 99;
		return c;
	}
	if (argc > 1 && !strcmp(argv[1], "loop"))
		for (;;)
			syscall(SYS_getppid);
	for (;;)
		pause();
}
