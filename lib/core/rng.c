/* rng.c - Philox4x32-10 counter-based RNG and CRC32 (see dlt/core.h).
 * The block function lives in dlt/philox.h, which lib/backend/cuda compiles for the
 * GPU too, so both give identical streams from one source. */
#include "dlt/core.h"
#include "dlt/philox.h"

#include <math.h>
#include <zlib.h>

void dlt_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4])
{
    dlt_philox4x32_hd(key, ctr_hi, ctr_lo, out);
}

float dlt_rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t i) { return dlt_philox_uniform_at(seed, stream, i); }

float dlt_rng_normal_at(uint64_t seed, uint64_t stream, uint64_t i)
{
    double u1, u2;
    dlt_philox_normal_uniforms(seed, stream, i, &u1, &u2);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void dlt_rng_init(dlt_rng *r, uint64_t seed, uint64_t stream)
{
    r->seed = seed;
    r->stream = stream;
    r->pos = 0;
}

/* Each call consumes one counter value and uses the first two words, so the
 * position alone (no buffered words) is the complete state. */
uint64_t dlt_rng_u64(dlt_rng *r)
{
    uint32_t o[4];
    dlt_philox4x32(r->seed, r->stream, r->pos++, o);
    return ((uint64_t)o[1] << 32) | o[0];
}

uint32_t dlt_rng_u32(dlt_rng *r) { return (uint32_t)dlt_rng_u64(r); }

double dlt_rng_uniform(dlt_rng *r) { return (dlt_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t dlt_rng_below(dlt_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = dlt_rng_u64(r); while (v >= lim);
    return v % n;
}

double dlt_rng_normal(dlt_rng *r)
{
    uint32_t o[4];
    dlt_philox4x32(r->seed, r->stream, r->pos++, o);
    double u1 = ((((uint64_t)o[1] << 32 | o[0]) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (((uint64_t)o[3] << 32 | o[2]) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint32_t dlt_crc32(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        uInt chunk = n > 0x40000000u ? 0x40000000u : (uInt)n;
        crc = (uint32_t)crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return crc;
}
