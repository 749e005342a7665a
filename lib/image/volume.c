/* volume.c - reading NIfTI volumes (dlt/volume.h): NIfTI-1 and -2, .nii,
 * .nii.gz, two-file .hdr/.img, any byte order, every integer and float
 * datatype, path "-" for stdin.
 *
 * The header is parsed here rather than by nifti_image_read, because we read
 * from stdin and from gzip streams, and because a hostile header must give a
 * message naming the file rather than a print or a huge allocation: dims are
 * checked against dlt_max_alloc() and (for plain files) the file length
 * before any voxel memory is taken, and compressed data is read into a buffer
 * that grows only as real bytes arrive, so a header that lies about its size
 * costs at most about twice the data that is really there. nifti_clib
 * supplies the header structs, byte swapping, datatype sizes and the
 * quaternion and orientation math. */
#include "volume_int.h"

#include "dlt/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- input source: a file or stdin, gzip or plain (zlib decides) ---- */

typedef struct src {
    char name[512]; /* for messages: the path, or "stdin" */
    gzFile gz;
    int64_t fsize;  /* size of a regular file, -1 if unknown (pipe) */
} src;

static int src_open(src *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->fsize = -1;
    int is_stdin = strcmp(path, "-") == 0;
    snprintf(s->name, sizeof s->name, "%s", is_stdin ? "stdin" : path);
    int fd = is_stdin ? dup(0) : open(path, O_RDONLY);
    if (fd < 0) return dlt_err(DLT_EIO, "%s: %s", s->name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            close(fd);
            return dlt_err(DLT_EIO, "%s: is a directory", s->name);
        }
        if (S_ISREG(st.st_mode)) s->fsize = (int64_t)st.st_size;
    }
    s->gz = gzdopen(fd, "rb");
    if (!s->gz) {
        close(fd);
        return dlt_err(DLT_ENOMEM, "%s: cannot open a zlib stream", s->name);
    }
    gzbuffer(s->gz, 1 << 17);
    return 0;
}

static void src_close(src *s)
{
    if (s->gz) gzclose(s->gz);
    s->gz = NULL;
}

/* The zlib error after a short read, as a message; 0 when there is none. */
static int src_error(src *s)
{
    int zerr = Z_OK;
    const char *m = gzerror(s->gz, &zerr);
    if (zerr == Z_OK || zerr == Z_STREAM_END) return 0;
    if (zerr == Z_BUF_ERROR) return dlt_err(DLT_ETRUNC, "%s: truncated gzip data (the compressed stream ends early)", s->name);
    if (zerr == Z_DATA_ERROR) {
        const char *c = strncmp(m, "<fd:", 4) == 0 ? strstr(m, ": ") : NULL; /* zlib names the fd, we name the file */
        return dlt_err(DLT_EFORMAT, "%s: corrupt gzip data (%s)", s->name, c ? c + 2 : m);
    }
    if (zerr == Z_ERRNO) return dlt_err(DLT_EIO, "%s: read failed: %s", s->name, strerror(errno));
    if (zerr == Z_MEM_ERROR) return dlt_err(DLT_ENOMEM, "%s: out of memory in zlib", s->name);
    return dlt_err(DLT_EIO, "%s: read failed (%s)", s->name, m);
}

/* Read up to n bytes; *got says how many came. Returns an error only for a
 * failed read or damaged gzip data; a clean early end is *got < n. */
static int src_read(src *s, void *buf, int64_t n, int64_t *got)
{
    *got = 0;
    uint8_t *p = buf;
    while (*got < n) {
        int64_t want = n - *got;
        unsigned c = want > (1 << 30) ? (1u << 30) : (unsigned)want;
        int r = gzread(s->gz, p + *got, c);
        if (r < 0) {
            int e = src_error(s);
            return e ? e : dlt_err(DLT_EIO, "%s: read failed", s->name);
        }
        if (r == 0) return src_error(s);
        *got += r;
    }
    return 0;
}

/* ---- header parsing ---- */

static uint32_t bswap32(uint32_t x) { return __builtin_bswap32(x); }

static void n1_to_n2(const nifti_1_header *a, nifti_2_header *b)
{
    memset(b, 0, sizeof *b);
    b->sizeof_hdr = 540;
    memcpy(b->magic, "n+2\0\r\n\032\n", 8);
    b->datatype = a->datatype;
    b->bitpix = a->bitpix;
    for (int i = 0; i < 8; i++) {
        b->dim[i] = a->dim[i];
        b->pixdim[i] = a->pixdim[i];
    }
    b->intent_p1 = a->intent_p1;
    b->intent_p2 = a->intent_p2;
    b->intent_p3 = a->intent_p3;
    b->vox_offset = (int64_t)a->vox_offset; /* validated by the caller */
    b->scl_slope = a->scl_slope;
    b->scl_inter = a->scl_inter;
    b->cal_max = a->cal_max;
    b->cal_min = a->cal_min;
    b->slice_duration = a->slice_duration;
    b->toffset = a->toffset;
    b->slice_start = a->slice_start;
    b->slice_end = a->slice_end;
    memcpy(b->descrip, a->descrip, 80);
    memcpy(b->aux_file, a->aux_file, 24);
    b->qform_code = a->qform_code;
    b->sform_code = a->sform_code;
    b->quatern_b = a->quatern_b;
    b->quatern_c = a->quatern_c;
    b->quatern_d = a->quatern_d;
    b->qoffset_x = a->qoffset_x;
    b->qoffset_y = a->qoffset_y;
    b->qoffset_z = a->qoffset_z;
    for (int i = 0; i < 4; i++) {
        b->srow_x[i] = a->srow_x[i];
        b->srow_y[i] = a->srow_y[i];
        b->srow_z[i] = a->srow_z[i];
    }
    b->slice_code = (unsigned char)a->slice_code;
    b->xyzt_units = (unsigned char)a->xyzt_units;
    b->intent_code = a->intent_code;
    memcpy(b->intent_name, a->intent_name, 16);
    b->dim_info = a->dim_info;
}

/* Bytes per voxel of the datatypes we read (0: not supported). */
static int dt_size(int dt)
{
    switch (dt) {
    case DT_UINT8: case DT_INT8: return 1;
    case DT_INT16: case DT_UINT16: return 2;
    case DT_INT32: case DT_UINT32: case DT_FLOAT32: return 4;
    case DT_INT64: case DT_UINT64: case DT_FLOAT64: return 8;
    default: return 0;
    }
}

typedef struct parsed {
    dlt_vhdr H;
    int swap;           /* file byte order differs from ours */
    int two_file;       /* "ni1"/"ni2": data in a separate .img */
    int hdr_size;       /* 348 or 540 */
    int64_t nvox3, nc;  /* voxels per channel, channels */
    int64_t data_bytes; /* nvox3 * nc * bytes per voxel */
    int nbyper;
} parsed;

static const char *dt_name(int dt)
{
    switch (dt) {
    case DT_UINT8: return "uint8";
    case DT_INT8: return "int8";
    case DT_INT16: return "int16";
    case DT_UINT16: return "uint16";
    case DT_INT32: return "int32";
    case DT_UINT32: return "uint32";
    case DT_INT64: return "int64";
    case DT_UINT64: return "uint64";
    case DT_FLOAT32: return "float32";
    case DT_FLOAT64: return "float64";
    default: return nifti_datatype_to_string(dt);
    }
}

/* Read and check the header; leaves the stream just after it. */
static int parse_header(src *s, parsed *P)
{
    memset(P, 0, sizeof *P);
    union {
        nifti_1_header n1;
        nifti_2_header n2;
        uint8_t b[540];
    } u;
    memset(&u, 0, sizeof u);
    int64_t got;
    int rc = src_read(s, u.b, 348, &got);
    if (rc) return rc;
    if (got == 0) return dlt_err(DLT_EFORMAT, "%s: empty file, not a NIfTI volume", s->name);
    if (got < 348) return dlt_err(DLT_EFORMAT, "%s: not a NIfTI volume (only %lld bytes, a header needs 348)", s->name, (long long)got);
    uint32_t sz;
    memcpy(&sz, u.b, 4);
    int ver;
    if (sz == 348 || bswap32(sz) == 348) ver = 1;
    else if (sz == 540 || bswap32(sz) == 540) ver = 2;
    else return dlt_err(DLT_EFORMAT, "%s: not a NIfTI volume (no NIfTI header)", s->name);
    P->swap = sz != 348 && sz != 540;
    P->hdr_size = ver == 1 ? 348 : 540;
    if (ver == 2) {
        rc = src_read(s, u.b + 348, 540 - 348, &got);
        if (rc) return rc;
        if (got < 540 - 348) return dlt_err(DLT_ETRUNC, "%s: truncated NIfTI-2 header", s->name);
    }
    const char *mg = ver == 1 ? u.n1.magic : u.n2.magic;
    if (ver == 1 && memcmp(mg, "n+1", 4) != 0 && memcmp(mg, "ni1", 4) != 0)
        return dlt_err(DLT_EFORMAT, "%s: not a NIfTI volume (ANALYZE 7.5 header or bad magic)", s->name);
    if (ver == 2 && memcmp(mg, "n+2", 4) != 0 && memcmp(mg, "ni2", 4) != 0)
        return dlt_err(DLT_EFORMAT, "%s: not a NIfTI volume (NIfTI-2 size but bad magic)", s->name);
    P->two_file = mg[1] == 'i';
    if (P->swap) swap_nifti_header(u.b, ver);
    nifti_2_header *h = &P->H.h;
    if (ver == 1) {
        float vo = u.n1.vox_offset;
        if (!isfinite(vo) || vo < 0 || vo != floorf(vo) || vo > 1e15f)
            return dlt_err(DLT_EFORMAT, "%s: bad vox_offset %g in the header", s->name, (double)vo);
        n1_to_n2(&u.n1, h);
    } else {
        *h = u.n2;
        memcpy(h->magic, "n+2\0\r\n\032\n", 8);
        if (h->vox_offset < 0) return dlt_err(DLT_EFORMAT, "%s: bad vox_offset %lld in the header", s->name, (long long)h->vox_offset);
    }
    P->H.version = P->H.src_version = ver;
    P->H.src_datatype = h->datatype;
    memcpy(P->H.descrip, h->descrip, 80);
    P->H.descrip[80] = 0;

    if (h->dim[0] < 1 || h->dim[0] > 7)
        return dlt_err(DLT_EFORMAT, "%s: bad header: dim[0] = %lld (number of dimensions must be 1..7)", s->name, (long long)h->dim[0]);
    for (int i = 1; i <= h->dim[0]; i++)
        if (h->dim[i] <= 0)
            return dlt_err(DLT_EFORMAT, "%s: bad header: dimension %d is %lld (must be positive)", s->name, i, (long long)h->dim[i]);
    P->nbyper = dt_size(h->datatype);
    if (!P->nbyper)
        return dlt_err(DLT_EUNSUP, "%s: datatype %s (code %d) is not supported (integer or real voxels only)", s->name,
                       dt_name(h->datatype), (int)h->datatype);
    int64_t nvox3 = 1, nc = 1;
    for (int i = 1; i <= h->dim[0]; i++) {
        int64_t *acc = i <= 3 ? &nvox3 : &nc;
        *acc = dlt_mul_checked(*acc, h->dim[i]);
        if (*acc < 0) break;
    }
    int64_t nvox = nvox3 < 0 || nc < 0 ? -1 : dlt_mul_checked(nvox3, nc);
    int64_t bytes = dlt_mul_checked(nvox, P->nbyper > 4 ? P->nbyper : 4);
    char dims[160] = "";
    for (int i = 1; i <= h->dim[0]; i++) {
        size_t l = strlen(dims);
        snprintf(dims + l, sizeof dims - l, "%s%lld", i > 1 ? "x" : "", (long long)h->dim[i]);
    }
    if (nvox < 0 || bytes < 0 || nvox > INT64_MAX / 16)
        return dlt_err(DLT_EFORMAT, "%s: bad header: dims %s: the voxel count overflows", s->name, dims);
    if (bytes > dlt_max_alloc())
        return dlt_err(DLT_ENOMEM, "%s: dims %s (%lld voxels) need %lld bytes, more than the %lld allowed (DLT_MAX_ALLOC)",
                       s->name, dims, (long long)nvox, (long long)bytes, (long long)dlt_max_alloc());
    P->nvox3 = nvox3;
    P->nc = nc;
    P->data_bytes = nvox * P->nbyper;
    if (!P->two_file && h->vox_offset < P->hdr_size)
        return dlt_err(DLT_EFORMAT, "%s: bad header: vox_offset %lld lies inside the %d-byte header", s->name,
                       (long long)h->vox_offset, P->hdr_size);
    double sl = h->scl_slope, in = h->scl_inter;
    if (isfinite(sl) && sl != 0 && !isfinite(in))
        return dlt_err(DLT_EFORMAT, "%s: bad header: scl_slope %g with a non-finite scl_inter", s->name, sl);
    return 0;
}

/* The data size check that needs no reading: a plain file must hold the
 * data the header describes; a gzip file cannot inflate more than ~1032:1. */
static int check_size(src *s, const parsed *P, int64_t offset)
{
    if (s->fsize < 0) return 0;
    int64_t need = offset + P->data_bytes;
    if (gzdirect(s->gz)) {
        if (s->fsize < need)
            return dlt_err(DLT_ETRUNC, "%s: truncated or bad header: the header needs %lld bytes (%lld of voxel data from offset %lld), the file has %lld",
                           s->name, (long long)need, (long long)P->data_bytes, (long long)offset, (long long)s->fsize);
    } else if (need / 1032 > s->fsize + 1024) {
        return dlt_err(DLT_ETRUNC, "%s: truncated or bad header: %lld bytes of voxel data cannot come from %lld compressed bytes",
                       s->name, (long long)P->data_bytes, (long long)s->fsize);
    }
    return 0;
}

/* Skip forward n bytes (extensions before vox_offset). */
static int src_skip(src *s, int64_t n, const parsed *P)
{
    uint8_t tmp[4096];
    while (n > 0) {
        int64_t got, c = n > (int64_t)sizeof tmp ? (int64_t)sizeof tmp : n;
        int rc = src_read(s, tmp, c, &got);
        if (rc) return rc;
        if (got < c)
            return dlt_err(DLT_ETRUNC, "%s: truncated or bad header: the file ends before vox_offset %lld", s->name,
                           (long long)P->H.h.vox_offset);
        n -= c;
    }
    return 0;
}

/* Read the voxel data into a buffer that grows as bytes arrive. */
static int read_data(src *s, const parsed *P, uint8_t **out)
{
    int64_t need = P->data_bytes, cap = need < (64 << 20) ? need : (64 << 20), have = 0;
    uint8_t *b = dlt_alloc(cap ? cap : 1, 1, s->name);
    if (!b) return DLT_ENOMEM;
    for (;;) {
        int64_t got;
        int rc = src_read(s, b + have, cap - have, &got);
        if (rc) { dlt_free(b); return rc; }
        have += got;
        if (have < cap) {
            dlt_free(b);
            return dlt_err(DLT_ETRUNC, "%s: truncated or bad header: voxel data ends after %lld of the %lld bytes the header describes",
                           s->name, (long long)have, (long long)need);
        }
        if (have == need) break;
        int64_t ncap = cap > need / 2 ? need : cap * 2;
        uint8_t *nb = dlt_alloc(ncap, 1, s->name);
        if (!nb) { dlt_free(b); return DLT_ENOMEM; }
        memcpy(nb, b, (size_t)have);
        dlt_free(b);
        b = nb;
        cap = ncap;
    }
    /* A damaged end of a gzip stream (CRC, length) shows only when zlib
     * reaches it; trailing bytes after the data are allowed, as in nibabel. */
    uint8_t one;
    int64_t got;
    int rc = src_read(s, &one, 1, &got);
    if (rc) { dlt_free(b); return rc; }
    *out = b;
    return 0;
}

/* ---- voxel conversion ---- */

/* raw (native order) -> float images or uint16 labels, scaled in double as
 * nibabel's get_fdata does. For labels, *bad gets the index of the first
 * value that is not an integer in 0..65535 (or -1). */
static void convert(const uint8_t *raw, int dt, int64_t n, int scaled, double slope, double inter, float *f,
                    uint16_t *lab, int64_t *bad, double *badval)
{
    *bad = -1;
#define CONV(T)                                                                   \
    do {                                                                          \
        const T *p = (const T *)raw;                                              \
        if (f) {                                                                  \
            if (scaled)                                                           \
                for (int64_t i = 0; i < n; i++) f[i] = (float)((double)p[i] * slope + inter); \
            else                                                                  \
                for (int64_t i = 0; i < n; i++) f[i] = (float)(double)p[i];       \
        } else {                                                                  \
            for (int64_t i = 0; i < n; i++) {                                     \
                double x = scaled ? (double)p[i] * slope + inter : (double)p[i];  \
                if (!(x >= 0 && x <= 65535 && x == floor(x))) {                   \
                    *bad = i;                                                     \
                    *badval = x;                                                  \
                    return;                                                       \
                }                                                                 \
                lab[i] = (uint16_t)x;                                             \
            }                                                                     \
        }                                                                         \
    } while (0)
    switch (dt) {
    case DT_UINT8: CONV(uint8_t); break;
    case DT_INT8: CONV(int8_t); break;
    case DT_INT16: CONV(int16_t); break;
    case DT_UINT16: CONV(uint16_t); break;
    case DT_INT32: CONV(int32_t); break;
    case DT_UINT32: CONV(uint32_t); break;
    case DT_INT64: CONV(int64_t); break;
    case DT_UINT64: CONV(uint64_t); break;
    case DT_FLOAT32: CONV(float); break;
    case DT_FLOAT64: CONV(double); break;
    }
#undef CONV
}

/* ---- the readers ---- */

enum { RD_IMAGE, RD_LABEL, RD_HEADER };

/* "x.hdr" / "x.hdr.gz" -> "x.img" / "x.img.gz" for two-file NIfTI. */
static int img_path(const char *path, char *out, size_t n)
{
    size_t l = strlen(path);
    if (l + 1 > n) return -1;
    strcpy(out, path);
    const char *exts[] = {".hdr", ".hdr.gz", ".HDR", ".HDR.gz"};
    for (int i = 0; i < 4; i++) {
        size_t e = strlen(exts[i]);
        if (l > e && strcmp(path + l - e, exts[i]) == 0) {
            memcpy(out + l - e + 1, i < 2 ? "img" : "IMG", 3);
            return 0;
        }
    }
    return -1;
}

static int read_impl(const char *path, dlt_volume *v, int mode)
{
    memset(v, 0, sizeof *v);
    if (!path || !*path) return dlt_err(DLT_EINVAL, "empty volume path");
    src s;
    int rc = src_open(&s, path);
    if (rc) return rc;
    parsed P;
    rc = parse_header(&s, &P);
    if (rc) goto out;
    nifti_2_header *h = &P.H.h;
    if (mode == RD_LABEL && P.nc > 1) {
        rc = dlt_err(DLT_EFORMAT, "%s: a label volume must have one channel, this one has %lld (4-D)", s.name, (long long)P.nc);
        goto out;
    }
    int64_t offset = h->vox_offset;
    if (P.two_file) {
        char ip[4096];
        if (strcmp(path, "-") == 0 || img_path(path, ip, sizeof ip) != 0) {
            rc = dlt_err(DLT_EUNSUP, "%s: a two-file NIfTI header (ni1): read it as NAME.hdr with NAME.img beside it", s.name);
            goto out;
        }
        src_close(&s);
        rc = src_open(&s, ip);
        if (rc) {
            dlt_err_prefix(rc, "%s: image file of the two-file volume", path);
            goto out;
        }
    } else {
        offset -= P.hdr_size;
    }
    rc = check_size(&s, &P, P.two_file ? offset : h->vox_offset);
    if (rc) goto out;

    int64_t dims[3] = {h->dim[0] >= 1 ? h->dim[1] : 1, h->dim[0] >= 2 ? h->dim[2] : 1, h->dim[0] >= 3 ? h->dim[3] : 1};
    v->nx = dims[0];
    v->ny = dims[1];
    v->nz = dims[2];
    v->nc = P.nc;
    dlt_vhdr *H = dlt_alloc(1, sizeof *H, s.name);
    if (!H) { rc = DLT_ENOMEM; goto out; }
    *H = P.H;
    v->hdr = H;
    dlt_vhdr_affine(H, dims, v->affine, v->spacing);
    if (mode == RD_HEADER) goto out;

    rc = src_skip(&s, offset, &P);
    if (rc) goto out;
    uint8_t *raw = NULL;
    rc = read_data(&s, &P, &raw);
    if (rc) goto out;
    int64_t n = P.nvox3 * P.nc;
    if (P.swap && P.nbyper > 1) nifti_swap_Nbytes(n, P.nbyper, raw);
    double slope = h->scl_slope, inter = h->scl_inter;
    int scaled = isfinite(slope) && slope != 0 && !(slope == 1 && inter == 0);
    int dt = h->datatype;
    if (mode == RD_IMAGE && dt == DT_FLOAT32 && !scaled) {
        v->data = (float *)raw; /* already what we want: no copy */
        goto out;
    }
    int64_t bad = -1;
    double badval = 0;
    if (mode == RD_IMAGE) {
        v->data = dlt_alloc(n, sizeof(float), s.name);
        if (v->data) convert(raw, dt, n, scaled, slope, inter, v->data, NULL, &bad, &badval);
    } else {
        v->label = dlt_alloc(n, sizeof(uint16_t), s.name);
        if (v->label) convert(raw, dt, n, scaled, slope, inter, NULL, v->label, &bad, &badval);
    }
    dlt_free(raw);
    if (!v->data && !v->label) { rc = DLT_ENOMEM; goto out; }
    if (bad >= 0) {
        int64_t i = bad % v->nx, j = bad / v->nx % v->ny, k = bad / (v->nx * v->ny);
        rc = dlt_err(DLT_EFORMAT, "%s: not a label volume: voxel (%lld,%lld,%lld) holds %.9g (labels are integers 0..65535)",
                     s.name, (long long)i, (long long)j, (long long)k, badval);
    }
out:
    src_close(&s);
    if (rc) dlt_volume_free(v);
    return rc;
}

int dlt_volume_read(const char *path, dlt_volume *v) { return read_impl(path, v, RD_IMAGE); }
int dlt_volume_read_label(const char *path, dlt_volume *v) { return read_impl(path, v, RD_LABEL); }
int dlt_volume_read_header(const char *path, dlt_volume *v) { return read_impl(path, v, RD_HEADER); }

const char *dlt_volume_descrip(const dlt_volume *v) { return v && v->hdr ? dlt_vhdr_of(v)->descrip : ""; }

const char *dlt_volume_datatype(const dlt_volume *v) { return v && v->hdr ? dt_name(dlt_vhdr_of(v)->src_datatype) : "float32"; }

int dlt_volume_nifti_version(const dlt_volume *v) { return v && v->hdr ? dlt_vhdr_of(v)->src_version : 1; }

void dlt_volume_xform_codes(const dlt_volume *v, int *qform_code, int *sform_code)
{
    *qform_code = v && v->hdr ? (int)dlt_vhdr_of(v)->h.qform_code : 0;
    *sform_code = v && v->hdr ? (int)dlt_vhdr_of(v)->h.sform_code : 0;
}

void dlt_volume_scaling(const dlt_volume *v, double *slope, double *inter)
{
    *slope = v && v->hdr ? dlt_vhdr_of(v)->h.scl_slope : 0;
    *inter = v && v->hdr ? dlt_vhdr_of(v)->h.scl_inter : 0;
}

void dlt_volume_free(dlt_volume *v)
{
    if (!v) return;
    dlt_free(v->data);
    dlt_free(v->label);
    dlt_free(v->hdr);
    memset(v, 0, sizeof *v);
}
