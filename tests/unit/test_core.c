/* test_core.c - errors, checked allocation, Philox known answers, RNG
 * determinism, CRC32, option parsers. */
#include "check.h"
#include "dlt/backend.h"
#include "dlt/core.h"
#include "dlt/io.h"

#include <string.h>

int main(void)
{
    /* Philox4x32-10 known-answer tests (Random123 kat_vectors). */
    uint32_t o[4];
    dlt_philox4x32(0, 0, 0, o);
    CHECK(o[0] == 0x6627e8d5u && o[1] == 0xe169c58du && o[2] == 0xbc57ac4cu && o[3] == 0x9b00dbd8u,
          "philox zero vector");
    dlt_philox4x32(UINT64_MAX, UINT64_MAX, UINT64_MAX, o);
    CHECK(o[0] == 0x408f276du && o[1] == 0x41c83b0eu && o[2] == 0xa20bc7c6u && o[3] == 0x6d5451fdu,
          "philox ones vector");
    dlt_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, o);
    CHECK(o[0] == 0xd16cfe09u && o[1] == 0x94fdccebu && o[2] == 0x5001e420u && o[3] == 0x24126ea1u,
          "philox pi vector");

    dlt_rng a, b;
    dlt_rng_init(&a, 7, 3);
    dlt_rng_init(&b, 7, 3);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= dlt_rng_u64(&a) == dlt_rng_u64(&b);
    CHECK(same, "same seed, same stream");
    dlt_rng c = a;
    uint64_t x = dlt_rng_u64(&a);
    CHECK(dlt_rng_u64(&c) == x, "state copy resumes exactly");
    double sum = 0, sq = 0;
    int n = 200000, inrange = 1;
    for (int i = 0; i < n; i++) {
        double u = dlt_rng_uniform(&a);
        inrange &= u >= 0 && u < 1;
        double z = dlt_rng_normal(&a);
        sum += z;
        sq += z * z;
    }
    CHECK(inrange, "uniform in [0,1)");
    CHECK(fabs(sum / n) < 0.01 && fabs(sq / n - 1) < 0.02, "normal mean %.4f var %.4f", sum / n, sq / n);
    int below_ok = 1;
    for (int i = 0; i < 1000; i++) below_ok &= dlt_rng_below(&a, 7) < 7;
    CHECK(below_ok, "below(n) < n");
    CHECK(dlt_rng_uniform_at(1, 2, 3) == dlt_rng_uniform_at(1, 2, 3) &&
              dlt_rng_uniform_at(1, 2, 3) != dlt_rng_uniform_at(1, 2, 4),
          "uniform_at is a pure function of (seed, stream, index)");

    CHECK(dlt_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value");

    CHECK(dlt_err(DLT_EIO, "x: %s", "gone") == DLT_EIO && strcmp(dlt_errmsg(), "x: gone") == 0, "error message");
    dlt_err_prefix(DLT_EIO, "file.nii");
    CHECK(strcmp(dlt_errmsg(), "file.nii: x: gone") == 0, "error prefix");
    CHECK(dlt_alloc(INT64_MAX / 2, 4, "huge") == NULL && strstr(dlt_errmsg(), "huge"), "overflowing alloc refused");
    CHECK(dlt_alloc((int64_t)1 << 50, 1, "absurd") == NULL && strstr(dlt_errmsg(), "absurd"), "absurd alloc refused");
    void *p = dlt_alloc(10, 10, "small");
    CHECK(p && ((uintptr_t)p & 63) == 0, "aligned alloc");
    dlt_free(p);
    CHECK(dlt_mul_checked(INT64_MAX, 2) == -1 && dlt_mul_checked(3, 4) == 12, "mul_checked");

    int v[3];
    CHECK(dlt_parse_int3("64", 1, 1000, v) == 0 && v[0] == 64 && v[2] == 64, "int3 scalar");
    CHECK(dlt_parse_int3("1x2x2", 1, 8, v) == 0 && v[0] == 1 && v[1] == 2 && v[2] == 2, "int3 x form");
    CHECK(dlt_parse_int3("64,64", 1, 1000, v) != 0, "int3 rejects two values");
    CHECK(dlt_parse_int3("0", 1, 1000, v) != 0, "int3 rejects out of range");
    int l[8], nl;
    CHECK(dlt_parse_ints("16,32,64,128", 8, l, &nl) == 0 && nl == 4 && l[3] == 128, "int list");
    CHECK(dlt_parse_ints("16,,3", 8, l, &nl) != 0 && dlt_parse_ints("16,", 8, l, &nl) != 0, "bad int lists");

    /* the device registry: every row named, described and creatable by its
     * name (cuda may fail here, but not as an unknown device) */
    int ok = dlt_device_count() >= 3;
    for (int i = 0; i < dlt_device_count(); i++) {
        const dlt_device *d = dlt_device_at(i);
        dlt_backend *be = NULL;
        int rc = dlt_backend_create(d->name, &be);
        if (!d->about || !*d->about || !strstr(dlt_device_names(), d->name) || (rc && rc != DLT_EUNSUP && rc != DLT_EDEVICE))
            ok = 0;
        if (!rc && (!be || (strcmp(d->name, "auto") && strncmp(be->name, d->name, 3)))) ok = 0;
        dlt_backend_free(be);
    }
    CHECK(ok && dlt_device_at(dlt_device_count()) == NULL, "device registry: %s", dlt_device_names());
    dlt_backend *be = NULL;
    CHECK(dlt_backend_create("tpu", &be) == DLT_EINVAL && be == NULL && strstr(dlt_errmsg(), dlt_device_names()),
          "an unknown device is refused naming the known ones (%s)", dlt_errmsg());
    return check_done();
}
