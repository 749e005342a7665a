/* fuzz_plan - dlt-normalize --plan text (lib/image/normalize.c): parse, and for a
 * plan that parses, its description must parse again to the same plan (the
 * text recorded in streams and models is read back by dlt-infer). An input
 * that starts like a dlt-plan file (lib/data/plan.c) is also read as one, as
 * dlt-normalize --plan FILE and dlt-infer --plan FILE read it. */
#include "fuzz.h"

#include <string.h>

#include "dlt/normalize.h"
#include "dlt/plan.h"

static void plan_file(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    dlt_norm_plan p;
    (void)dlt_plan_normalize(path, &p);
    static const char *keys[] = {"normalize", "patch", "batch", "filters", "strides", "steps", "nokey"};
    char v[256];
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (dlt_plan_file_get(path, keys[k], v, sizeof v) == 0 && strlen(v) >= sizeof v) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 9 && !memcmp(data, "DLTPLAN 1", 9)) plan_file(data, size);
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    dlt_norm_plan p;
    memset(&p, 0, sizeof p);
    if (dlt_norm_plan_parse(&p, text) == 0) {
        char d1[4096], d2[4096];
        int n1 = dlt_norm_describe(&p, d1, sizeof d1);
        if (n1 < 0 || n1 >= (int)sizeof d1) abort();
        dlt_norm_plan q;
        memset(&q, 0, sizeof q);
        if (dlt_norm_plan_parse(&q, d1) != 0) {
            fprintf(stderr, "description does not parse: '%s' -> '%s': %s\n", text, d1, dlt_errmsg());
            abort();
        }
        dlt_norm_describe(&q, d2, sizeof d2);
        if (strcmp(d1, d2) != 0) {
            fprintf(stderr, "description changes on a round trip: '%s' -> '%s'\n", d1, d2);
            abort();
        }
        (void)dlt_norm_plan_whole_volume(&p);
    }
    free(text);
    return 0;
}
