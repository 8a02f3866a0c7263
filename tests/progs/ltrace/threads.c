/* Threads calling the same library functions at once: every call must be seen, in every thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define THREADS 4
#define CALLS 500
static char *volatile sink;
static void *work(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < CALLS; i++) {
        char *p = malloc(40 + id);
        memset(p, (int)id, 40);
        sink = p;
        free(sink);
    }
    return NULL;
}
int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    puts("threads: done");
    return 0;
}
