/* A stop inside a signal handler: the walk must cross glibc's __restore_rt back into main. */
#include "stop.h"
__attribute__((noinline)) void leaf(int n) { if (n == 0) STOP(); else leaf(n - 1); KEEP(); }
__attribute__((noinline)) void mid(int n) { leaf(n); KEEP(); }
static void handler(int s) { (void)s; mid(2); KEEP(); }
int main(void) { signal(SIGUSR1, handler); raise(SIGUSR1); KEEP(); return 0; }
