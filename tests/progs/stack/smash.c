/* A deliberately smashed stack: `victim` overwrites its own return address (and what lies above it), then
 * stops in a callee. Only the frames below the damage can be proven; everything else is a guess. */
#include <string.h>
#include "stop.h"
__attribute__((noinline)) void report(void) { STOP(); KEEP(); }
__attribute__((noinline)) void victim(void) {
    volatile char buf[16];
    memset((char *)buf, 0x41, 16 + 64);  /* past the end: over the saved registers and return address */
    report();
    KEEP();
}
__attribute__((noinline)) void caller(void) { victim(); KEEP(); }
int main(void) { caller(); KEEP(); return 0; }
