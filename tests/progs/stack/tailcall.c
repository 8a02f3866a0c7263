/* A tail call: at -O2 `via` jumps to `target`, so no frame of `via` exists for anyone to find. */
#include "stop.h"
volatile int sink;
__attribute__((noinline)) void target(int n) { sink = n; STOP(); sink++; }
__attribute__((noinline)) void via(int n) { target(n + 1); }
__attribute__((noinline)) void outer(int n) { via(n * 2); KEEP(); }
int main(void) { outer(3); KEEP(); return 0; }
