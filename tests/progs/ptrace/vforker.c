/* vfork()s a child that execs `sleep 100` (RELIABILITY #7: stopping while a vfork is in flight). */
#include <unistd.h>
#include <sys/wait.h>

int main(void)
{
	pid_t pid = vfork();
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "100", (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	return 0;
}
