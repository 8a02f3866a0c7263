// C++: mangled names in the executable and in libstdc++ (operator new/delete), for ltrace -C.
#include <cstdio>
#include <cstdlib>
namespace shapes {
struct Box { int w, h; };
__attribute__((noinline)) int area(const Box *b) { return b->w * b->h; }
__attribute__((noinline)) long area(long side) { return side * side; }
}  // namespace shapes
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    long total = 0;
    for (int i = 0; i < n; i++) {
        shapes::Box *b = new shapes::Box{i + 1, 3};
        total += shapes::area(b) + shapes::area(static_cast<long>(i));
        delete b;
    }
    printf("total %ld\n", total);
    return 0;
}
