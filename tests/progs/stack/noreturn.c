/* A call to a noreturn function is often a function's last instruction: its return address is the first
 * byte of the next function, so the caller must be looked up at address-1. */
#include <stdlib.h>
#include "stop.h"
__attribute__((noinline, noreturn)) void die(int code) { STOP(); exit(code); }
__attribute__((noinline)) void check(int ok) { if (!ok) die(3); }
__attribute__((noinline)) void next_function(void) { KEEP(); }
int main(int argc, char **argv) { (void)argv; check(argc > 5); next_function(); return 0; }
