/* volume_write.c - writing NIfTI volumes and making new ones (dlt/volume.h).
 *
 * The header written is the source's header with only what must change
 * changed: dims, datatype, bitpix, vox_offset (352, no extensions), scaling
 * (none) and calibration (none), and the description when asked. Geometry
 * fields (pixdim, units, qform/sform and codes, quaternion, srow, intent,
 * slice timing, dim_info) are copied bit for bit. NIfTI-1 sources are
 * written as NIfTI-1, NIfTI-2 sources as NIfTI-2 (keeping their double
 * precision); a NIfTI-1 volume whose dims outgrow int16 becomes NIfTI-2.
 * gzip output is made by deflate directly, with no timestamp, so the same
 * volume always gives the same bytes; level 4, because noisy CT compresses
 * only ~6% smaller at gzip's default 6 and takes four times as long. */
#include "volume_int.h"

#include "dlt/core.h"
#include "dlt/io.h"

#include <math.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ---- output sink: plain or deflate (gzip wrapper, mtime 0) ---- */

typedef struct sink {
    FILE *f;
    const char *name;
    int gz;
    z_stream z;
    uint8_t *zbuf;
} sink;

enum { ZBUF = 1 << 18 };

static int sink_init(sink *k, FILE *f, const char *name, int gz)
{
    memset(k, 0, sizeof *k);
    k->f = f;
    k->name = name;
    k->gz = gz;
    if (!gz) return 0;
    k->zbuf = dlt_alloc(ZBUF, 1, name);
    if (!k->zbuf) return DLT_ENOMEM;
    if (deflateInit2(&k->z, 4, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        dlt_free(k->zbuf);
        return dlt_err(DLT_ENOMEM, "%s: zlib init failed", name);
    }
    return 0;
}

static int sink_deflate(sink *k, int flush)
{
    int zr;
    do {
        k->z.next_out = k->zbuf;
        k->z.avail_out = ZBUF;
        zr = deflate(&k->z, flush);
        if (zr == Z_STREAM_ERROR) return dlt_err(DLT_EIO, "%s: zlib deflate failed", k->name);
        int rc = dlt_write_all(k->f, k->zbuf, ZBUF - k->z.avail_out, k->name);
        if (rc) return rc;
    } while (k->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
    return 0;
}

static int sink_write(sink *k, const void *p, size_t n)
{
    if (!k->gz) return dlt_write_all(k->f, p, n, k->name);
    const uint8_t *b = p;
    while (n > 0) {
        unsigned c = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        k->z.next_in = (Bytef *)b;
        k->z.avail_in = c;
        int rc = sink_deflate(k, Z_NO_FLUSH);
        if (rc) return rc;
        b += c;
        n -= c;
    }
    return 0;
}

static int sink_finish(sink *k)
{
    int rc = 0;
    if (k->gz) {
        k->z.next_in = NULL;
        k->z.avail_in = 0;
        rc = sink_deflate(k, Z_FINISH);
        deflateEnd(&k->z);
        dlt_free(k->zbuf);
        k->zbuf = NULL;
    }
    return rc;
}

static void sink_drop(sink *k)
{
    if (k->gz && k->zbuf) {
        deflateEnd(&k->z);
        dlt_free(k->zbuf);
    }
    k->zbuf = NULL;
}

/* ---- headers ---- */

static void n2_to_n1(const nifti_2_header *b, nifti_1_header *a)
{
    memset(a, 0, sizeof *a);
    a->sizeof_hdr = 348;
    a->regular = 'r';
    a->dim_info = b->dim_info;
    for (int i = 0; i < 8; i++) {
        a->dim[i] = (short)b->dim[i];
        a->pixdim[i] = (float)b->pixdim[i];
    }
    a->intent_p1 = (float)b->intent_p1;
    a->intent_p2 = (float)b->intent_p2;
    a->intent_p3 = (float)b->intent_p3;
    a->intent_code = (short)b->intent_code;
    a->datatype = b->datatype;
    a->bitpix = b->bitpix;
    a->slice_start = (short)b->slice_start;
    a->vox_offset = (float)b->vox_offset;
    a->scl_slope = (float)b->scl_slope;
    a->scl_inter = (float)b->scl_inter;
    a->slice_end = (short)b->slice_end;
    a->slice_code = (char)b->slice_code;
    a->xyzt_units = (char)b->xyzt_units;
    a->cal_max = (float)b->cal_max;
    a->cal_min = (float)b->cal_min;
    a->slice_duration = (float)b->slice_duration;
    a->toffset = (float)b->toffset;
    memcpy(a->descrip, b->descrip, 80);
    memcpy(a->aux_file, b->aux_file, 24);
    a->qform_code = (short)b->qform_code;
    a->sform_code = (short)b->sform_code;
    a->quatern_b = (float)b->quatern_b;
    a->quatern_c = (float)b->quatern_c;
    a->quatern_d = (float)b->quatern_d;
    a->qoffset_x = (float)b->qoffset_x;
    a->qoffset_y = (float)b->qoffset_y;
    a->qoffset_z = (float)b->qoffset_z;
    for (int i = 0; i < 4; i++) {
        a->srow_x[i] = (float)b->srow_x[i];
        a->srow_y[i] = (float)b->srow_y[i];
        a->srow_z[i] = (float)b->srow_z[i];
    }
    memcpy(a->intent_name, b->intent_name, 16);
    memcpy(a->magic, "n+1", 4);
}

static int needs_n2(int64_t nx, int64_t ny, int64_t nz, int64_t nc)
{
    return nx > 32767 || ny > 32767 || nz > 32767 || nc > 32767;
}

static int64_t nvox3(const dlt_volume *v) { return v->nx * v->ny * v->nz; }

static int check_dims(int64_t nx, int64_t ny, int64_t nz, int64_t nc)
{
    if (nx < 1 || ny < 1 || nz < 1 || nc < 1)
        return dlt_err(DLT_EINVAL, "bad volume dims %lldx%lldx%lld with %lld channels", (long long)nx, (long long)ny,
                       (long long)nz, (long long)nc);
    int64_t n = dlt_mul_checked(dlt_mul_checked(dlt_mul_checked(nx, ny), nz), nc);
    if (n < 0) return dlt_err(DLT_ENOMEM, "volume dims %lldx%lldx%lld: voxel count overflows", (long long)nx, (long long)ny, (long long)nz);
    return 0;
}

int dlt_volume_write(const char *path, const dlt_volume *v, const char *descrip)
{
    if (!v || !v->hdr || (!v->data && !v->label)) return dlt_err(DLT_EINVAL, "%s: nothing to write (empty volume)", path);
    if (v->label && v->nc != 1) return dlt_err(DLT_EINVAL, "%s: a label volume has one channel", path);
    dlt_vhdr H = *dlt_vhdr_of(v);
    nifti_2_header *h = &H.h;
    int64_t n3 = nvox3(v), n = n3 * v->nc;
    int dt = DT_FLOAT32, nb = 4;
    if (v->label) {
        uint16_t mx = 0;
        for (int64_t i = 0; i < n; i++)
            if (v->label[i] > mx) mx = v->label[i];
        dt = mx <= 255 ? DT_UINT8 : DT_UINT16;
        nb = mx <= 255 ? 1 : 2;
    }
    int ver = H.version == 2 || needs_n2(v->nx, v->ny, v->nz, v->nc) ? 2 : 1;
    h->datatype = (int16_t)dt;
    h->bitpix = (int16_t)(8 * nb);
    h->dim[0] = v->nc > 1 ? 4 : 3;
    h->dim[1] = v->nx;
    h->dim[2] = v->ny;
    h->dim[3] = v->nz;
    h->dim[4] = v->nc;
    for (int i = 5; i < 8; i++) h->dim[i] = 1;
    h->scl_slope = 0;
    h->scl_inter = 0;
    h->cal_min = 0;
    h->cal_max = 0;
    if (descrip) {
        memset(h->descrip, 0, 80);
        strncpy(h->descrip, descrip, 79);
    }
    union {
        nifti_1_header n1;
        nifti_2_header n2;
        uint8_t b[544];
    } u;
    memset(&u, 0, sizeof u);
    int hsize;
    if (ver == 1) {
        h->vox_offset = 352;
        n2_to_n1(h, &u.n1);
        hsize = 352;
    } else {
        h->vox_offset = 544;
        memcpy(h->magic, "n+2\0\r\n\032\n", 8);
        h->sizeof_hdr = 540;
        memcpy(u.b, h, 540);
        hsize = 544;
    }
    size_t pl = strlen(path);
    int gz = strcmp(path, "-") != 0 && pl > 3 && strcasecmp(path + pl - 3, ".gz") == 0;

    dlt_outfile o;
    int rc = dlt_outfile_open(&o, path);
    if (rc) return rc;
    const char *name = strcmp(path, "-") == 0 ? "stdout" : path;
    sink k;
    rc = sink_init(&k, o.f, name, gz);
    if (rc) { dlt_outfile_abort(&o); return rc; }
    rc = sink_write(&k, u.b, (size_t)hsize);
    if (!rc && v->data) {
        rc = sink_write(&k, v->data, (size_t)n * sizeof(float));
    } else if (!rc && nb == 2) {
        rc = sink_write(&k, v->label, (size_t)n * 2);
    } else if (!rc) {
        uint8_t buf[1 << 16];
        for (int64_t i = 0; i < n && !rc; i += (int64_t)sizeof buf) {
            int64_t c = n - i < (int64_t)sizeof buf ? n - i : (int64_t)sizeof buf;
            for (int64_t j = 0; j < c; j++) buf[j] = (uint8_t)v->label[i + j];
            rc = sink_write(&k, buf, (size_t)c);
        }
    }
    if (!rc) rc = sink_finish(&k);
    else sink_drop(&k);
    if (rc) {
        dlt_outfile_abort(&o);
        return rc;
    }
    return dlt_outfile_commit(&o);
}

/* ---- making volumes ---- */

static int alloc_voxels(dlt_volume *v, int is_label)
{
    int64_t n = nvox3(v) * v->nc;
    if (is_label) v->label = dlt_calloc(n, sizeof(uint16_t), "label volume");
    else v->data = dlt_calloc(n, sizeof(float), "image volume");
    return v->label || v->data ? 0 : DLT_ENOMEM;
}

int dlt_volume_like(dlt_volume *v, const dlt_volume *ref, int64_t nc, int is_label)
{
    memset(v, 0, sizeof *v);
    if (!ref || !ref->hdr) return dlt_err(DLT_EINVAL, "volume_like: reference has no header");
    int rc = check_dims(ref->nx, ref->ny, ref->nz, nc);
    if (rc) return rc;
    if (is_label && nc != 1) return dlt_err(DLT_EINVAL, "a label volume has one channel, not %lld", (long long)nc);
    dlt_vhdr *H = dlt_alloc(1, sizeof *H, "volume header");
    if (!H) return DLT_ENOMEM;
    *H = *dlt_vhdr_of(ref);
    v->hdr = H;
    v->nx = ref->nx;
    v->ny = ref->ny;
    v->nz = ref->nz;
    v->nc = nc;
    memcpy(v->affine, ref->affine, sizeof v->affine);
    memcpy(v->spacing, ref->spacing, sizeof v->spacing);
    rc = alloc_voxels(v, is_label);
    if (rc) dlt_volume_free(v);
    return rc;
}

int dlt_volume_new(dlt_volume *v, int64_t nx, int64_t ny, int64_t nz, int64_t nc, int is_label, const double affine[4][4])
{
    memset(v, 0, sizeof *v);
    int rc = check_dims(nx, ny, nz, nc);
    if (rc) return rc;
    if (is_label && nc != 1) return dlt_err(DLT_EINVAL, "a label volume has one channel, not %lld", (long long)nc);
    dlt_vhdr *H = dlt_calloc(1, sizeof *H, "volume header");
    if (!H) return DLT_ENOMEM;
    nifti_2_header *h = &H->h;
    h->sizeof_hdr = 540;
    memcpy(h->magic, "n+2\0\r\n\032\n", 8);
    h->dim[0] = nc > 1 ? 4 : 3;
    h->dim[1] = nx;
    h->dim[2] = ny;
    h->dim[3] = nz;
    h->dim[4] = nc;
    for (int i = 5; i < 8; i++) h->dim[i] = 1;
    for (int i = 0; i < 8; i++) h->pixdim[i] = 1;
    h->xyzt_units = NIFTI_UNITS_MM;
    h->datatype = is_label ? DT_UINT8 : DT_FLOAT32;
    H->version = needs_n2(nx, ny, nz, nc) ? 2 : 1;
    H->src_version = H->version;
    H->src_datatype = h->datatype;
    double I[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    dlt_vhdr_set_affine(H, affine ? affine : (const double(*)[4])I);
    v->hdr = H;
    v->nx = nx;
    v->ny = ny;
    v->nz = nz;
    v->nc = nc;
    int64_t d[3] = {nx, ny, nz};
    dlt_vhdr_affine(H, d, v->affine, v->spacing);
    rc = alloc_voxels(v, is_label);
    if (rc) dlt_volume_free(v);
    return rc;
}

int dlt_volume_set_geometry(dlt_volume *v, int64_t nx, int64_t ny, int64_t nz, const double affine[4][4])
{
    if (!v || !v->hdr) return dlt_err(DLT_EINVAL, "set_geometry: volume has no header");
    int rc = check_dims(nx, ny, nz, v->nc);
    if (rc) return rc;
    int is_label = v->label != NULL;
    int64_t n = dlt_mul_checked(dlt_mul_checked(dlt_mul_checked(nx, ny), nz), v->nc);
    void *p = is_label ? dlt_calloc(n, sizeof(uint16_t), "label volume") : dlt_calloc(n, sizeof(float), "image volume");
    if (!p) return DLT_ENOMEM;
    dlt_free(v->data);
    dlt_free(v->label);
    v->data = is_label ? NULL : p;
    v->label = is_label ? p : NULL;
    dlt_vhdr *H = dlt_vhdr_of(v);
    H->h.dim[1] = nx;
    H->h.dim[2] = ny;
    H->h.dim[3] = nz;
    if (needs_n2(nx, ny, nz, v->nc)) H->version = 2;
    dlt_vhdr_set_affine(H, affine);
    v->nx = nx;
    v->ny = ny;
    v->nz = nz;
    int64_t d[3] = {nx, ny, nz};
    dlt_vhdr_affine(H, d, v->affine, v->spacing);
    return 0;
}
