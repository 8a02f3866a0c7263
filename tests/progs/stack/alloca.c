/* alloca: the frame size is only known at run time, so the CFA must come from the frame register. */
#include <alloca.h>
#include <string.h>
#include "stop.h"
__attribute__((noinline)) void use(char *p, int n) { memset(p, 1, n); STOP(); KEEP(); }
__attribute__((noinline)) void dynamic(int n) { char *p = alloca(n); use(p, n); KEEP(); }
int main(int argc, char **argv) { (void)argv; dynamic(100 * argc + 37); KEEP(); return 0; }
