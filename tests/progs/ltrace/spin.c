/* Runs until killed, calling library functions from two threads: for -p attach/detach tests. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static char *volatile sink;
static void *loop(void *arg) {
    (void)arg;
    for (;;) { char *p = malloc(32); memset(p, 1, 32); sink = p; free(sink); usleep(1000); }
    return NULL;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, loop, NULL);
    loop(NULL);
}
