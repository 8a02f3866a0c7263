/* Opens descriptors with and without O_CLOEXEC, then execs /bin/true: --fd-leaks must name exactly the
 * ones without it. Prints "FD HOW" for each expected leak. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	int leaked_file = open("/etc/hostname", O_RDONLY);
	int safe_file = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	int p[2];
	pipe(p);               /* both ends leak */
	int q[2];
	pipe2(q, O_CLOEXEC);   /* neither does */
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int d = dup(safe_file); /* dup drops CLOEXEC: leaks */
	int fixed = open("/etc/hostname", O_RDONLY);
	fcntl(fixed, F_SETFD, FD_CLOEXEC); /* made safe after the fact */
	(void)s;
	printf("%d openat\n%d pipe\n%d pipe\n%d dup\n", leaked_file, p[0], p[1], d);
	fflush(stdout);
	execl("/bin/true", "true", (char *)NULL);
	return 1;
}
