/* Known syscalls, each followed by the line strace prints for it (on stdout, for the harness to diff).
 * Traced with: -e trace=openat,close,getppid,pipe2,dup2,write,read,exit_group -o FILE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char expected[8192];
static size_t used;

#define EXPECT(...) (used += snprintf(expected + used, sizeof(expected) - used, __VA_ARGS__))

int main(void)
{
	/* glibc's open() is openat(AT_FDCWD, ...) */
	int rc = open("/nonexistent/unitrace", O_RDONLY);
	EXPECT("openat(AT_FDCWD, \"/nonexistent/unitrace\", O_RDONLY) = %d ENOENT (%s)\n", rc, strerror(ENOENT));
	rc = close(-1);
	EXPECT("close(-1) = %d EBADF (%s)\n", rc, strerror(EBADF));
	pid_t pp = getppid();
	EXPECT("getppid() = %d\n", pp);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC))
		return 99;
	EXPECT("pipe2([%d, %d], O_CLOEXEC) = 0\n", fds[0], fds[1]);
	rc = dup2(fds[0], 42);
	EXPECT("dup2(%d, 42) = %d\n", fds[0], rc);
	rc = write(fds[1], "abc\n\1", 5);
	EXPECT("write(%d, \"abc\\n\\1\", 5) = %d\n", fds[1], rc);
	char buf[16];
	rc = read(42, buf, sizeof(buf));
	EXPECT("read(42, \"abc\\n\\1\", 16) = %d\n", rc);
	rc = close(42);
	EXPECT("close(42) = %d\n", rc);
	/* a 40-byte string is cut at -s 32 with "..." */
	rc = write(fds[1], "0123456789012345678901234567890123456789", 40);
	EXPECT("write(%d, \"01234567890123456789012345678901\"..., 40) = %d\n", fds[1], rc);
	EXPECT("exit_group(3) = ?\n+++ exited with 3 +++\n");
	/* the expectations go out in one write of our own, which the trace filter leaves out (fd 1 is
	 * not traced: only writes to the pipe are expected, see the harness) */
	if (write(1, expected, used) != (ssize_t)used)
		return 98;
	syscall(SYS_exit_group, 3);
	return 0;
}
