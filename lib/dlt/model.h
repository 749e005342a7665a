/* dlt/model.h - the model file (dlt-model(5)): safetensors.
 *
 * An 8-byte little-endian header length N, N bytes of JSON, then the tensor
 * data. The JSON maps each tensor name to {"dtype", "shape", "data_offsets"}
 * and "__metadata__" to a flat string->string map holding the network
 * configuration (net, filters, strides, res_units, in_channels, classes,
 * class_names, patch...), the training step, the preprocessing of the
 * training data, and, in checkpoints, the optimiser and RNG state keys.
 * Tensor names follow the PyTorch peer's state_dict names, so
 * safetensors.torch.load_file() feeds the peer directly. Checkpoints add
 * optimiser tensors under "optim.m.<name>" and "optim.v.<name>". */
#ifndef DLT_MODEL_H
#define DLT_MODEL_H

#include <stdint.h>
#include <stdio.h>

enum { DLT_DT_F32 = 0, DLT_DT_F64, DLT_DT_I32, DLT_DT_I64, DLT_DT_U8, DLT_DT_BF16, DLT_DT_F16 };

typedef struct dlt_model_tensor {
    char *name;
    int dtype;
    int ndim;
    int64_t shape[8];
    void *data;       /* host memory, owned by the model */
    int64_t nbytes;
} dlt_model_tensor;

typedef struct dlt_model {
    int ntensors, cap_tensors;
    dlt_model_tensor *t;
    int nmeta, cap_meta;
    char **meta_key, **meta_value;
} dlt_model;

void dlt_model_init(dlt_model *m);
void dlt_model_free(dlt_model *m);
/* Read (path or "-"); checks the JSON, dtypes, shapes against offsets,
 * overlaps and file length; errors name the tensor that is wrong. */
int dlt_model_read(const char *path, dlt_model *m);
/* Write atomically (temporary, fsync, rename); "-" writes to stdout.
 * Tensors are stored sorted by name, as safetensors recommends. */
int dlt_model_write(const char *path, const dlt_model *m);

/* Add a tensor (data copied); replaces one of the same name. */
int dlt_model_add(dlt_model *m, const char *name, int dtype, int ndim, const int64_t *shape, const void *data);
const dlt_model_tensor *dlt_model_find(const dlt_model *m, const char *name);
int dlt_model_set_meta(dlt_model *m, const char *key, const char *value);
const char *dlt_model_get_meta(const dlt_model *m, const char *key); /* NULL if absent */

/* Is this buffer (the first bytes of a file) a safetensors file? */
int dlt_model_is_model(const void *buf, int64_t n);

/* Added by the formats module: */
/* Read from a buffer holding the whole file; `name` is used in messages. */
int dlt_model_read_mem(const void *buf, int64_t len, const char *name, dlt_model *m);
/* Write to an open stream (no atomic rename); `name` for messages. */
int dlt_model_fwrite(FILE *f, const dlt_model *m, const char *name);
/* "F32"... for a DLT_DT_* code ("?" if bad); bytes per element (0 if bad);
 * the code for a name (-1 if unknown). */
const char *dlt_model_dtype_name(int dtype);
int dlt_model_dtype_size(int dtype);
int dlt_model_dtype_parse(const char *s);
/* Element count of a tensor (product of its shape; 1 for a scalar). */
int64_t dlt_model_numel(const dlt_model_tensor *t);
/* Convert a tensor of any dtype to float32 into out[numel] (caller's memory). */
int dlt_model_tensor_to_f32(const dlt_model_tensor *t, float *out);

#endif
