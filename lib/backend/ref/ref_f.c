/* backend/ref/ref_f.c - the reference kernels in float: what the "cpu-ref" backend runs. */
#include <stdlib.h>

#include "dlt/core.h"
#define R float
#define F(name) name##_f
#include "backend/ref/ref_kern.h"
