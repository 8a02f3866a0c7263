/* A child that exits 7 and a parent that reaps it: -f, -o FILE lines carry "PID " prefixes.
 * Traced with: -f -e trace=wait4,exit_group -o FILE */
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		syscall(SYS_exit_group, 7);
	}
	int status;
	pid_t got = waitpid(child, &status, 0);
	pid_t me = getpid();
	printf("%d exit_group(7) = ?\n", child);
	printf("%d +++ exited with 7 +++\n", child);
	printf("%d wait4(%d, [{WIFEXITED(s) && WEXITSTATUS(s) == 7}], 0, NULL) = %d\n", me, child, got);
	printf("%d --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=%d, si_uid=%d, si_status=7, si_utime=0, si_stime=0} ---\n",
	       me, child, getuid());
	printf("%d exit_group(0) = ?\n%d +++ exited with 0 +++\n", me, me);
	fflush(stdout);
	syscall(SYS_exit_group, 0);
	return 0;
}
