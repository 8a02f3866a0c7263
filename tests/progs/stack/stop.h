/* Every corpus program stops itself here: the test (and gdb) see the thread stopped inside libc's raise(),
 * so the walk starts in libc (CFI, no debug info) and climbs into the program. */
#include <signal.h>
#define STOP() raise(SIGSTOP)
#define KEEP() __asm__ volatile("" ::: "memory") /* keeps a call from becoming a tail call */
