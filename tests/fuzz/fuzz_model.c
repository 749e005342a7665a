/* fuzz_model - the model reader (safetensors: 8-byte length, JSON header
 * with dtypes, shapes, offsets and __metadata__, then tensor data;
 * lib/nn/model.c and lib/core/json.c), and every tensor converted to float as
 * dlt-train and dlt-infer do. */
#include "fuzz.h"

#include <string.h>

#include "dlt/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dlt_model m;
    dlt_model_init(&m);
    if (dlt_model_read_mem(data, (int64_t)size, "fuzz", &m) == 0) {
        for (int i = 0; i < m.ntensors; i++) {
            int64_t n = dlt_model_numel(&m.t[i]);
            if (n < 0 || n > (1 << 24)) continue;
            float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
            dlt_model_tensor_to_f32(&m.t[i], f);
            free(f);
        }
        for (int i = 0; i < m.nmeta; i++) (void)dlt_model_get_meta(&m, m.meta_key[i]);
    }
    dlt_model_free(&m);
    return 0;
}
