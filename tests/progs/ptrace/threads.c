/* N threads (argv[1]) each make K getppid() calls (argv[2]) and print "tid count" for the test to compare
 * with the tracer's per-thread counts. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>

static long per_thread;
static pthread_barrier_t barrier;

static void *work(void *arg)
{
	long *slot = arg;
	pthread_barrier_wait(&barrier);
	for (long i = 0; i < per_thread; i++)
		syscall(SYS_getppid);
	slot[0] = syscall(SYS_gettid);
	slot[1] = per_thread;
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 64;
	per_thread = argc > 2 ? atol(argv[2]) : 100;
	pthread_t th[1024];
	long slots[1024][2];
	pthread_barrier_init(&barrier, NULL, n);
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, work, slots[i]);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < n; i++)
		printf("%ld %ld\n", slots[i][0], slots[i][1]);
	return 0;
}
