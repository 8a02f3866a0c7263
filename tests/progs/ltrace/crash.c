/* Crashes inside a traced library function (strlen(NULL)): reported, not hung. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    char *volatile p = argc > 5 ? argv[1] : NULL;
    printf("len %zu\n", strlen(p));
    return 0;
}
