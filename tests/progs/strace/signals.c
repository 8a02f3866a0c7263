/* A handled signal and then death by an unhandled one.
 * Traced with: -e trace=kill,rt_sigreturn,exit_group -o FILE */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void on_usr1(int sig) { (void)sig; }

int main(void)
{
	struct rlimit none = {0, 0};
	setrlimit(RLIMIT_CORE, &none); /* "killed by SIGSEGV" without "(core dumped)" on any machine */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	pid_t pid = getpid();
	uid_t uid = getuid();
	printf("kill(%d, SIGUSR1) = 0\n", pid);
	printf("--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=%d, si_uid=%d} ---\n", pid, uid);
	printf("rt_sigreturn({mask=[]}) = 0\n");
	printf("kill(%d, SIGSEGV) = 0\n", pid);
	printf("--- SIGSEGV {si_signo=SIGSEGV, si_code=SI_USER, si_pid=%d, si_uid=%d} ---\n", pid, uid);
	printf("+++ killed by SIGSEGV +++\n");
	fflush(stdout);
	kill(pid, SIGUSR1);
	kill(pid, SIGSEGV);
	return 0;
}
