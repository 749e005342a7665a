/* fastbe.h - the "cpu" fast path for a unit test, through the registry as
 * a user gets it; DLT_EUNSUP (the test skips) where "cpu" runs the
 * reference loops: a build without oneDNN (make DNNL=0), or a CPU without
 * loops for its ISA. */
#ifndef DLT_TEST_FASTBE_H
#define DLT_TEST_FASTBE_H

#include <string.h>

#include "dlt/backend.h"

static inline int test_fast_backend(dlt_backend **be)
{
    int rc = dlt_backend_create("cpu", be);
    if (rc) return rc;
    if (strcmp((*be)->name, "cpu")) {
        dlt_backend_free(*be);
        *be = NULL;
        return dlt_err(DLT_EUNSUP, "this build runs the reference loops for device cpu (no oneDNN)");
    }
    return 0;
}

#endif
