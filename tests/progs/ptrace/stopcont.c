/* Stops itself with SIGSTOP; whoever sends SIGCONT lets it go on, and its SIGCONT handler must run
 * (RELIABILITY #6). Exit 0 when it did. */
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t conts;
static void on_cont(int sig) { (void)sig; conts++; }

int main(void)
{
	signal(SIGCONT, on_cont);
	kill(getpid(), SIGSTOP);
	for (int i = 0; i < 1000 && !conts; i++)
		usleep(1000);
	return conts ? 0 : 1;
}
