/* fuzz_patches - the patch-stream reader (dlt-patches(5), lib/data/patches.c):
 * header, then every record to the end or the first error. */
#include "fuzz.h"

#include <string.h>

#include "dlt/patches.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dlt_patch_reader r;
    memset(&r, 0, sizeof r);
    if (dlt_patch_reader_mem(&r, data, (int64_t)size, "fuzz") != 0) return 0;
    dlt_patch p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < 10000 && dlt_patch_read(&r, &p) == 1; i++) {
        /* touch what a consumer touches: every voxel and label */
        int64_t n = (int64_t)p.size[0] * p.size[1] * p.size[2];
        float s = 0;
        for (int64_t k = 0; k < n * p.channels; k++) s += p.image[k];
        if (p.has_label)
            for (int64_t k = 0; k < n; k++) s += p.label[k];
        volatile float sink = s;
        (void)sink;
    }
    dlt_patch_free(&p);
    dlt_patch_reader_close(&r);
    return 0;
}
