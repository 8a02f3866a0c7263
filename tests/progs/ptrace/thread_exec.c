/* A non-leader thread calls execve (RELIABILITY #8): the leader's pid lives on in /bin/true. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>

static void *run(void *arg)
{
	(void)arg;
	char *argv[] = { "true", NULL };
	char *envp[] = { NULL };
	printf("%ld\n", (long)syscall(SYS_gettid));
	fflush(stdout);
	execve("/bin/true", argv, envp);
	return NULL;
}

int main(void)
{
	pthread_t t;
	pthread_create(&t, NULL, run, NULL);
	for (;;)
		pause();
}
