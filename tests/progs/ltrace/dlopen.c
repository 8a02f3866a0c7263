/* dlopen PLUGIN, call plugin_fn and plugin_other through dlsym, then libm's cbrt and cos (an IFUNC) the
   same way; dlclose the plugin and load it again (argv[2] rounds). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int rounds = argc > 2 ? atoi(argv[2]) : 2;
    void *m = dlopen("libm.so.6", RTLD_NOW);
    if (!m) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    double (*cb)(double) = (double (*)(double))dlsym(m, "cbrt");
    double (*co)(double) = (double (*)(double))dlsym(m, "cos");
    for (int r = 0; r < rounds; r++) {
        void *h = dlopen(argv[1], RTLD_NOW);
        if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
        int (*fn)(int) = (int (*)(int))dlsym(h, "plugin_fn");
        int (*other)(int) = (int (*)(int))dlsym(h, "plugin_other");
        printf("round %d: %d %d %.1f %.1f\n", r, fn(r + 1), other(r + 5), cb(27.0 * (r + 1) * (r + 1) * (r + 1)),
               co(0.0));
        dlclose(h);
    }
    dlclose(m);
    return 0;
}
