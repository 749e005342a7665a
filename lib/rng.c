/* rng.c - Philox4x32-10 counter-based RNG and CRC32 (see dlt/core.h).
 * The same arithmetic is written in lib/cuda so both give identical streams. */
#include "dlt/core.h"

#include <math.h>
#include <zlib.h>

void dlt_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

float dlt_rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint32_t o[4];
    dlt_philox4x32(seed, stream, i, o);
    return (o[0] >> 8) * (1.0f / 16777216.0f);
}

float dlt_rng_normal_at(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint32_t o[4];
    dlt_philox4x32(seed, stream, i, o);
    double u1 = ((o[0] >> 8) + 1.0) / 16777217.0, u2 = (o[1] >> 8) / 16777216.0;
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
