/* Four threads, each making a known number of getppid calls; the harness counts them per tid.
 * Prints "TID COUNT" lines for the threads it started. Traced with: -f -e trace=getppid -o FILE */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NTHREADS 4
static pid_t tids[NTHREADS];
static int counts[NTHREADS] = {100, 200, 300, 400};

static void *work(void *arg)
{
	long i = (long)arg;
	tids[i] = (pid_t)syscall(SYS_gettid);
	for (int n = 0; n < counts[i]; n++)
		syscall(SYS_getppid);
	return NULL;
}

int main(void)
{
	pthread_t th[NTHREADS];
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, work, (void *)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		printf("%d %d\n", tids[i], counts[i]);
	return 0;
}
