/* Inlining: at -O2 `inner` and `middle` live inside `outer`; DWARF says so (DW_TAG_inlined_subroutine). */
#include "stop.h"
volatile int sink;
static inline __attribute__((always_inline)) void inner(int n) { sink = n; STOP(); sink++; }
static inline __attribute__((always_inline)) void middle(int n) { inner(n + 1); sink--; }
__attribute__((noinline)) void outer(int n) { middle(n * 2); KEEP(); }
int main(void) { outer(5); KEEP(); return 0; }
