/* fuzz_listfile - the list/TSV reader (lib/core/listfile.c): header detection,
 * field counts, and the column and path queries the tools make. */
#include "fuzz.h"

#include <string.h>

#include "dlt/listfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"id", "image", "label", "pred", "ref", NULL};
    dlt_listfile l;
    memset(&l, 0, sizeof l);
    if (dlt_listfile_read(fuzz_file(data, size), names, &l) != 0) return 0;
    int cols[64], n = dlt_listfile_numbered(&l, "image", cols, 64);
    (void)n;
    for (const char *const *c = names; *c; c++) (void)dlt_listfile_column(&l, *c);
    for (int r = 0; r < l.nrows && r < 100; r++)
        for (int c = 0; c < l.ncols; c++) {
            char *p = NULL;
            if (dlt_listfile_path(&l, r, c, 0, &p) == 0) free(p);
        }
    dlt_listfile_free(&l);
    return 0;
}
