/* dlt/probe.h - which implementation a backend gives each operation of a
 * network: one training step (Adam, cross-entropy) and one inference pass
 * on random data of the given batch and patch, after which the backend's
 * dlt_backend_info(be, "convolutions") lists every convolution it ran and
 * how (dlt-info --backend prints it; tests check that none runs reference
 * code on a CPU with AVX2). */
#ifndef DLT_PROBE_H
#define DLT_PROBE_H

#include <stdint.h>

#include "dlt/backend.h"
#include "dlt/net.h"

/* patch is X,Y,Z; train/infer choose the passes. 0 or a DLT_E* code. */
int dlt_net_probe(dlt_backend *be, const dlt_net_config *c, int64_t batch, const int64_t patch[3], int train,
                  int infer);

/* The CPU's model name (from /proc/cpuinfo, "unknown" elsewhere) in buf. */
void dlt_cpu_model(char *buf, int len);

#endif
