/* Deep recursion: 40 frames of the same function. */
#include "stop.h"
__attribute__((noinline)) int down(int n) { if (n == 0) { STOP(); return 0; } int r = down(n - 1) + 1; KEEP(); return r; }
int main(void) { return down(40) == 40 ? 0 : 1; }
