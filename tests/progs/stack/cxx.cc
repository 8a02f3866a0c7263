// C++: namespaces, a template, a method and a lambda, so names must be demangled to match gdb's.
#include <csignal>
#include <functional>
namespace shapes {
template <typename T> struct Box {
    T value;
    __attribute__((noinline)) T open(int depth) const {
        if (depth == 0) { std::raise(SIGSTOP); return value; }
        T r = open(depth - 1); __asm__ volatile("" ::: "memory"); return r;
    }
};
__attribute__((noinline)) int unpack(const std::function<int(int)> &f) { int r = f(2); __asm__ volatile(""); return r; }
}  // namespace shapes
int main() {
    shapes::Box<long> box{7};
    return shapes::unpack([&](int d) { return static_cast<int>(box.open(d)); }) == 7 ? 0 : 1;
}
