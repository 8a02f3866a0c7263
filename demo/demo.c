/* unitrace's bundled demo: one small program that exercises every feature the tracer shows.
 *
 * - files: opens /etc/hostname for reading, a file it creates in $TMPDIR (or /tmp) for writing, and a
 *   path that does not exist (one ENOENT, deliberately);
 * - library calls: malloc/free, strlen, qsort, getenv (for ltrace-style user probes);
 * - processes: forks a child that re-executes this program in child mode (`demo --child`), which then
 *   execs /bin/true; the parent waits for it;
 * - a descriptor leak: the log file is opened WITHOUT O_CLOEXEC and survives both execs (--fd-leaks
 *   reports it), while every other descriptor is O_CLOEXEC;
 * - a short sleep (nanosleep) and two threads that each write one line;
 * - output is deterministic (no PIDs, times or addresses) and the exit code is 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *words[] = {"strace", "ltrace", "ftrace", "bpftrace", "perf"};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static int by_string(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct job {
	int id;
	int logfd;
	ssize_t written;
};

static void *worker(void *arg)
{
	struct job *job = arg;
	char line[64];
	int n = snprintf(line, sizeof(line), "thread %d\n", job->id);
	/* each thread makes its own syscall; main prints the results in a fixed order */
	job->written = write(job->logfd, line, (size_t)n);
	return NULL;
}

static int child_mode(void)
{
	/* the leaked descriptor (3 unless the caller had more open) is still here after exec */
	execl("/bin/true", "true", (char *)NULL);
	perror("demo: exec /bin/true");
	return 127;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child_mode();

	/* deterministic stdout even when it is a pipe: line buffered, flushed before fork */
	setvbuf(stdout, NULL, _IOLBF, 0);

	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	char *logpath = malloc(strlen(tmp) + 32);
	if (logpath == NULL)
		return 1;
	sprintf(logpath, "%s/unitrace-demo-%d.log", tmp, (int)getpid());

	/* the leak: no O_CLOEXEC on purpose */
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (logfd < 0) {
		perror("demo: open log");
		return 1;
	}

	char buf[256];
	int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	if (fd >= 0)
		close(fd);
	printf("demo: read %s from /etc/hostname\n", got > 0 ? "some bytes" : "nothing");

	int missing = open("/nonexistent/unitrace-demo", O_RDONLY | O_CLOEXEC);
	printf("demo: open missing file: %s\n", missing < 0 ? strerror(errno) : "unexpectedly opened");

	const char *sorted[NWORDS];
	memcpy(sorted, words, sizeof(words));
	qsort(sorted, NWORDS, sizeof(sorted[0]), by_string);
	size_t total = 0;
	for (size_t i = 0; i < NWORDS; i++)
		total += strlen(sorted[i]);
	printf("demo: sorted %zu words, first %s, last %s, %zu letters\n", NWORDS, sorted[0],
	       sorted[NWORDS - 1], total);
	int n = snprintf(buf, sizeof(buf), "first=%s last=%s\n", sorted[0], sorted[NWORDS - 1]);
	if (write(logfd, buf, (size_t)n) != n)
		perror("demo: write log");

	struct timespec nap = {0, 20 * 1000 * 1000};
	nanosleep(&nap, NULL);

	pthread_t threads[2];
	struct job jobs[2];
	for (int i = 0; i < 2; i++) {
		jobs[i] = (struct job){.id = i + 1, .logfd = logfd, .written = -1};
		pthread_create(&threads[i], NULL, worker, &jobs[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(threads[i], NULL);
		printf("demo: thread %d wrote %zd bytes\n", jobs[i].id, jobs[i].written);
	}

	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		execl("/proc/self/exe", argv[0], "--child", (char *)NULL);
		_exit(127);
	}
	int status = 0;
	waitpid(child, &status, 0);
	printf("demo: child exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

	close(logfd);
	unlink(logpath);
	free(logpath);
	printf("demo: done\n");
	return 0;
}
