/* backend/ref/ref_d.c - the reference kernels in double: for finite-difference checks in float64. */
#include <stdlib.h>

#include "dlt/core.h"
#define R double
#define F(name) name##_d
#include "backend/ref/ref_kern.h"
