#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((noinline)) int work(int n) { return n * 2 + 1; }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 3;
    for (int i = 0; i < n; i++) {
        char *p = malloc(16 + i);
        strcpy(p, "hello");
        printf("%s %zu\n", p, strlen(p));
        free(p);
    }
    getpid();
    return work(n) > 1000;
}
