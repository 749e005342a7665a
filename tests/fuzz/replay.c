/* replay - runs a fuzz harness (built with gcc, no libFuzzer) on each file
 * named on the command line, or by default on every file of tests/fuzz/corpus/NAME (the
 * seeds) and of tests/fuzz/regress/NAME (inputs that once crashed a reader;
 * run from the repository root, as tests/run.sh does). make check runs it,
 * under SAN=1 with ASan and UBSan, so a fixed bug stays fixed. TAP output; a
 * crash ends the run with its signal, which tests/run.sh reports. */
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The raw bytes of a file (dlt_read_file would inflate gzip). */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, got;
    *n = 0;
    do {
        if (*n == cap && !(buf = realloc(buf, cap = cap * 2 + 65536))) abort();
        got = fread(buf + *n, 1, cap - *n, f);
        *n += got;
    } while (got);
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    glob_t g = {0};
    if (argc > 1) {
        for (int i = 1; i < argc; i++) glob(argv[i], GLOB_NOCHECK | (i > 1 ? GLOB_APPEND : 0), NULL, &g);
    } else {
        glob("tests/fuzz/corpus/" FUZZ_NAME "/*", 0, NULL, &g);
        glob("tests/fuzz/regress/" FUZZ_NAME "/*", GLOB_APPEND, NULL, &g);
    }
    if (g.gl_pathc == 0) {
        printf("1..1\nnot ok 1 - fuzz replay %s: no inputs (run from the repository root)\n", FUZZ_NAME);
        return 1;
    }
    printf("1..%zu\n", g.gl_pathc);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        size_t n;
        uint8_t *buf = slurp(g.gl_pathv[i], &n);
        if (!buf) {
            printf("not ok %zu - fuzz replay %s: cannot open %s\n", i + 1, FUZZ_NAME, g.gl_pathv[i]);
            continue;
        }
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        printf("ok %zu - fuzz replay %s: %s\n", i + 1, FUZZ_NAME, g.gl_pathv[i]);
    }
    globfree(&g);
    return 0;
}
