/* fuzz_plan - dlt-normalize --plan text (lib/normalize.c): parse, and for a
 * plan that parses, its description must parse again to the same plan (the
 * text recorded in streams and models is read back by dlt-infer). */
#include "fuzz.h"

#include <string.h>

#include "dlt/normalize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
