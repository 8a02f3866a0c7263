/* A library the test program loads with dlopen. */
__attribute__((noinline)) int plugin_fn(int x) { return x * 3 + 1; }
__attribute__((noinline)) int plugin_other(int x) { return plugin_fn(x) - 1; }
