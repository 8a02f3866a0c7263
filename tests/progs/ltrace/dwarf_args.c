/* Functions of the program itself, built with -g: their arguments are printed by name and type from DWARF. */
#include <stdio.h>
#include <stdbool.h>
struct pt { int x, y; };
enum mode { FAST = 1, SLOW = 2 };
__attribute__((noinline)) long parse(const char *text, unsigned len, bool strict, enum mode m) { return (long)len * (strict ? 2 : 1) + m + text[0]; }
__attribute__((noinline)) double scale(double f, int k) { return f * k; }
__attribute__((noinline)) int norm(struct pt p, int w) { return p.x * p.y + w; }
__attribute__((noinline)) char grade(char c, void *ctx) { return ctx ? c : 'x'; }
int main(void) {
    struct pt p = {2, 3};
    long r = parse("GET /", 5, true, SLOW);
    printf("%ld %g %d %c\n", r, scale(1.5, 3), norm(p, 4), grade('a', &p));
    return 0;
}
