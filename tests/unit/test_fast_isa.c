/* test_fast_isa.c - the fast path on this CPU: the ISA of its loops and its
 * channel block follow the machine (and DLT_CPU_ISA), and no convolution
 * of DLTK's default U-Net or FCN, in a training step or in inference, runs
 * oneDNN's reference code on a CPU with AVX2 (there it was 30x slower than
 * PyTorch). tests/run.sh runs this, like every test_fast_*, at the native
 * ISA and capped at each lesser one. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fastbe.h"
#include "backend/backends.h"
#include "dlt/probe.h"

/* The ISA level this process should run at: cpuid capped by DLT_CPU_ISA. */
static const char *expected_isa(void)
{
    __builtin_cpu_init();
    int lv = __builtin_cpu_supports("avx512f") ? 3 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 2 : 1;
    const char *cap = getenv("DLT_CPU_ISA");
    if (cap && !strcmp(cap, "avx2") && lv > 2) lv = 2;
    if (cap && !strcmp(cap, "sse2")) lv = 1;
    return lv == 3 ? "avx512" : lv == 2 ? "avx2" : "sse2";
}

static void net_case(const char *name, int kind)
{
    dlt_backend *be = NULL;
    if (test_fast_backend(&be)) {
        SKIP("%s: no oneDNN fast path (%s)", name, dlt_errmsg());
        return;
    }
    dlt_net_config c;
    dlt_net_config_default(&c, kind, 1, 14);
    const int64_t patch[3] = {32, 32, 32};
    int rc = dlt_net_probe(be, &c, 2, patch, 1, 1);
    CHECK(rc == 0, "%s: a training step (batch 2, 32^3) and an inference pass run (%s)", name, rc ? dlt_errmsg() : "ok");
    const char *rep = dlt_backend_info(be, "convolutions");
    int lines = 0, refs = 0;
    char first[256] = "";
    for (const char *l = rep ? rep : ""; *l;) {
        const char *e = strchr(l, '\n');
        int n = e ? (int)(e - l) : (int)strlen(l);
        lines++;
        if (memmem(l, (size_t)n, "reference", 9) && !refs++) snprintf(first, sizeof first, "%.*s", n, l);
        l += n + (e != NULL);
    }
    CHECK(lines >= 10, "%s: the backend reports its convolutions (%d lines)", name, lines);
    if (strcmp(expected_isa(), "sse2"))
        CHECK(refs == 0, "%s: no convolution runs reference code at %s (%d do; first: %s)", name, expected_isa(), refs,
              first);
    else
        printf("# %s: %d of %d convolutions on reference loops at sse2 (not required: a CPU without AVX2)\n", name,
               refs, lines);
    dlt_backend_free(be);
}

int main(void)
{
    dlt_backend *be = NULL;
    if (test_fast_backend(&be)) {
        SKIP("no oneDNN fast path in this build (%s)", dlt_errmsg());
        return check_done();
    }
    const char *isa = dlt_backend_info(be, "isa");
    printf("# %s\n", isa ? isa : "?");
    const char *want = expected_isa();
    CHECK(isa && !strncmp(isa, want, strlen(want)) && isa[strlen(want)] == ' ', "loops at %s (%s)", want, isa ? isa : "?");
    const int blk16 = strstr(isa ? isa : "", "16-channel") != NULL, blk8 = strstr(isa ? isa : "", " 8-channel") != NULL;
    if (!strcmp(want, "avx512"))
        CHECK(blk16, "AVX-512: 16-channel blocks (%s)", isa);
    else
        CHECK(blk8, "%s: 8-channel blocks (%s)", want, isa);
    CHECK(!strcmp(dlt_backend_info(be, "precision"), "fp32"), "precision fp32 by default");
    dlt_backend_free(be);
    net_case("U-Net 16,32,64,128", DLT_NET_UNET);
    net_case("FCN 16,32,64,128", DLT_NET_FCN);
    return check_done();
}
