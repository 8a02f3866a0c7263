/* Signals: a handled SIGUSR1 (the handler must run), SIGPIPE at its default disposition and nothing blocked
 * when started by the tracer (RELIABILITY #12), then the exit status or death argv[1] asks for:
 * "exit N", "abort", "segv". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_usr1(int sig) { got = sig; }

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t blocked;
	sigaction(SIGPIPE, NULL, &sa);
	if (sa.sa_handler != SIG_DFL)
		return 90;
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	if (sigismember(&blocked, SIGCHLD) || sigismember(&blocked, SIGINT))
		return 91;
	signal(SIGUSR1, on_usr1);
	kill(getpid(), SIGUSR1);
	if (got != SIGUSR1)
		return 92;
	if (argc > 1 && !strcmp(argv[1], "abort"))
		abort();
	if (argc > 1 && !strcmp(argv[1], "segv"))
		*(volatile int *)8 = 1;
	return argc > 2 ? atoi(argv[2]) : 0;
}
