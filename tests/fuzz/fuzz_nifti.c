/* fuzz_nifti - the NIfTI reader (dlt_volume_read*, lib/image/volume.c) on any
 * bytes: as given (plain, or gzip when the input starts with 1f 8b), and the
 * same bytes gzip-compressed, so header mutations also run through the gzip
 * path. It must return an error or a volume, never crash or leak. */
#include "fuzz.h"

#include <string.h>
#include <zlib.h>

#include "dlt/volume.h"

static void read_all_ways(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    dlt_volume v;
    memset(&v, 0, sizeof v);
    if (dlt_volume_read_header(path, &v) == 0) dlt_volume_free(&v);
    memset(&v, 0, sizeof v);
    if (dlt_volume_read(path, &v) == 0) dlt_volume_free(&v);
    memset(&v, 0, sizeof v);
    if (dlt_volume_read_label(path, &v) == 0) dlt_volume_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_all_ways(data, size);
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) return 0;
    /* gzip (windowBits 16+15) of the input */
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    uLong cap = deflateBound(&z, size) + 32;
    uint8_t *gz = malloc(cap);
    z.next_in = (Bytef *)data, z.avail_in = size, z.next_out = gz, z.avail_out = cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    read_all_ways(gz, z.total_out);
    deflateEnd(&z);
    free(gz);
    return 0;
}
