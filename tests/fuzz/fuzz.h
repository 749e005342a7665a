/* tests/fuzz/fuzz.h - what every libFuzzer harness shares: a memory limit the
 * readers enforce (so a header that claims 10 GiB is refused as the tools
 * would refuse it, instead of tripping libFuzzer's RSS limit), and the input
 * as a file for the readers that take a path (a memfd, opened by name as
 * /proc/self/fd/N, so the path-based code runs exactly as in the tools). */
#ifndef DLT_FUZZ_H
#define DLT_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dlt/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    setenv("DLT_MAX_ALLOC", "256M", 1);
    dlt_log_set_level(DLT_LOG_QUIET);
    return 0;
}

/* The path of a file holding data[0..size), the same file on every call. */
static inline const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz", 0);
        if (fd < 0) abort();
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return path;
}

#endif
