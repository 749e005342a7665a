/* dist.c - dlt/dist.h on MPI (DLT_HAVE_MPI), or a world of one.
 *
 * Messages larger than MPI's int count are sent in pieces of 2^28 elements
 * (1 GiB of floats), so counts never overflow. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlt/dist.h"

#ifdef DLT_HAVE_MPI
#include <mpi.h>
#endif

struct dlt_dist {
    int rank, size, mpi;
    dlt_reduce red;
};

#define PIECE ((int64_t)1 << 28)

/* The launcher's process count, from its environment; 0 if none. */
static int launcher_size(void)
{
    const char *v;
    if ((v = getenv("OMPI_COMM_WORLD_SIZE")) || (v = getenv("PMI_SIZE")) || (v = getenv("PMIX_SIZE"))) return atoi(v);
    if (getenv("PMIX_RANK") || getenv("PMI_RANK")) return -1; /* a launcher; size unknown until MPI says */
    return 0;
}

static int red_sum(void *ctx, double *v, int64_t n) { return dlt_dist_sum(ctx, v, n); }

int dlt_dist_init(int *argc, char ***argv, dlt_dist **out)
{
    *out = NULL;
    dlt_dist *d = calloc(1, sizeof *d);
    if (!d) return dlt_err(DLT_ENOMEM, "out of memory");
    d->size = 1;
    const int ls = launcher_size();
#ifdef DLT_HAVE_MPI
    if (ls != 0) {
        int prov = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &prov) != MPI_SUCCESS) {
            free(d);
            return dlt_err(DLT_EDEVICE, "MPI_Init failed");
        }
        d->mpi = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    }
#else
    (void)argc, (void)argv;
    if (ls > 1 || ls < 0) {
        free(d);
        return dlt_err(DLT_EUNSUP, "started by an MPI launcher, but this build has no MPI (build with make MPI=1); "
                                   "the copies would train alone and overwrite one another's checkpoint");
    }
#endif
    d->red.sum = red_sum;
    d->red.ctx = d;
    *out = d;
    return 0;
}

void dlt_dist_finish(dlt_dist *d)
{
    if (!d) return;
#ifdef DLT_HAVE_MPI
    if (d->mpi) MPI_Finalize();
#endif
    free(d);
}

void dlt_dist_abort(dlt_dist *d, int code)
{
    fflush(stderr);
#ifdef DLT_HAVE_MPI
    if (d && d->mpi && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    _exit(code);
}

int dlt_dist_rank(const dlt_dist *d) { return d ? d->rank : 0; }
int dlt_dist_size(const dlt_dist *d) { return d ? d->size : 1; }
const dlt_reduce *dlt_dist_reduce(dlt_dist *d) { return d && d->size > 1 ? &d->red : NULL; }

const char *dlt_dist_library(void)
{
#ifdef DLT_HAVE_MPI
    static char v[MPI_MAX_LIBRARY_VERSION_STRING + 8];
    if (!v[0]) {
        char s[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(s, &len);
        s[strcspn(s, ",\n")] = 0; /* "Open MPI v4.1.4, package: ..." -> its name and version */
        snprintf(v, sizeof v, "MPI (%s)", s);
    }
    return v;
#else
    return "none (built with MPI=0)";
#endif
}

#ifdef DLT_HAVE_MPI
static int mpi_err(int e, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(e, s, &len);
    return dlt_err(DLT_EDEVICE, "MPI %s: %s", what, s);
}
#define ACTIVE(d) ((d) && (d)->mpi && (d)->size > 1)
#endif

#ifdef DLT_HAVE_MPI
/* v[0..n) of type t (esz bytes each) summed over the ranks in place, in pieces */
static int sum_pieces(void *v, int64_t n, MPI_Datatype t, size_t esz)
{
    for (int64_t o = 0; o < n; o += PIECE) {
        int e = MPI_Allreduce(MPI_IN_PLACE, (char *)v + (size_t)o * esz, (int)(n - o < PIECE ? n - o : PIECE), t, MPI_SUM,
                              MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_err(e, "allreduce");
    }
    return 0;
}
#endif

int dlt_dist_sum(dlt_dist *d, double *v, int64_t n)
{
#ifdef DLT_HAVE_MPI
    if (ACTIVE(d)) return sum_pieces(v, n, MPI_DOUBLE, sizeof *v);
#else
    (void)d, (void)v, (void)n;
#endif
    return 0;
}

int dlt_dist_sum_f32(dlt_dist *d, float *v, int64_t n)
{
#ifdef DLT_HAVE_MPI
    if (ACTIVE(d)) return sum_pieces(v, n, MPI_FLOAT, sizeof *v);
#else
    (void)d, (void)v, (void)n;
#endif
    return 0;
}

int dlt_dist_max_int(dlt_dist *d, int *v, int n)
{
#ifdef DLT_HAVE_MPI
    if (!ACTIVE(d)) return 0;
    int e = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (e != MPI_SUCCESS) return mpi_err(e, "allreduce");
#else
    (void)d, (void)v, (void)n;
#endif
    return 0;
}

int dlt_dist_bcast(dlt_dist *d, void *buf, int64_t bytes)
{
#ifdef DLT_HAVE_MPI
    if (!ACTIVE(d)) return 0;
    for (int64_t o = 0; o < bytes; o += PIECE) {
        int e = MPI_Bcast((char *)buf + o, (int)(bytes - o < PIECE ? bytes - o : PIECE), MPI_BYTE, 0, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_err(e, "broadcast");
    }
#else
    (void)d, (void)buf, (void)bytes;
#endif
    return 0;
}

int dlt_dist_scatter(dlt_dist *d, const void *send, void *recv, int64_t bytes)
{
#ifdef DLT_HAVE_MPI
    if (ACTIVE(d)) {
        if (bytes > INT_MAX) return dlt_err(DLT_EINVAL, "MPI scatter: %lld bytes per rank is over MPI's limit",
                                            (long long)bytes);
        /* rank 0 keeps its own share where it is when send is recv */
        void *rb = d->rank == 0 && send == recv ? MPI_IN_PLACE : recv;
        int e = MPI_Scatter(send, (int)bytes, MPI_BYTE, rb, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
        return e == MPI_SUCCESS ? 0 : mpi_err(e, "scatter");
    }
#endif
    if (send != recv) memcpy(recv, send, (size_t)bytes);
    return 0;
}
