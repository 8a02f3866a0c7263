/* bench/bpf_ustack.py's traced program: N writes of one byte to /dev/null, 4 calls deep, timed inside. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#define KEEP __asm__ volatile("" ::: "memory")
static int fd;
__attribute__((noinline)) int d(int x) { char c = (char)x; int r = write(fd, &c, 1); KEEP; return r; }
__attribute__((noinline)) int c(int x) { int r = d(x + 1); KEEP; return r; }
__attribute__((noinline)) int b(int x) { int r = c(x + 2); KEEP; return r; }
__attribute__((noinline)) int a(int x) { int r = b(x + 3); KEEP; return r; }
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    fd = open("/dev/null", O_WRONLY);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) a((int)i);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "loop %.1f ms %.3f us/call\n", ns / 1e6, ns / 1e3 / n);
    struct timespec z = {0, 300000000};
    nanosleep(&z, 0);
    return 0;
}
