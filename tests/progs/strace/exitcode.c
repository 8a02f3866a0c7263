/* exit 3 -> the tracer exits 3 */
#include <stdlib.h>
int main(void) { exit(3); }
