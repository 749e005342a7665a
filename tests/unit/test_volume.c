/* test_volume.c - NIfTI volume I/O (dlt/volume.h): every stored datatype,
 * scaling, byte order, NIfTI-1 and -2, two-file pairs, 4-D, round trips,
 * header geometry copied bit for bit, labels, stdin/stdout, deterministic
 * gzip, atomic writes, orientation, grid comparison, and every kind of
 * broken file (each must fail with a message naming the file). */
#include "check.h"
#include "dlt/core.h"
#include "dlt/volume.h"

#include <fcntl.h>
#include <nifti2_io.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];

static const char *tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Write a then b to path; gzip-compressed when path ends in .gz, unless raw. */
static void put2(const char *path, const void *a, size_t na, const void *b, size_t nb, int raw)
{
    size_t l = strlen(path);
    if (!raw && l > 3 && strcmp(path + l - 3, ".gz") == 0) {
        gzFile g = gzopen(path, "wb");
        if (na) gzwrite(g, a, (unsigned)na);
        if (nb) gzwrite(g, b, (unsigned)nb);
        gzclose(g);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (na) fwrite(a, 1, na, f);
    if (nb) fwrite(b, 1, nb, f);
    fclose(f);
}

static void put(const char *path, const void *a, size_t na, const void *b, size_t nb) { put2(path, a, na, b, nb, 0); }

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) { *n = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)l + 1);
    *n = fread(b, 1, (size_t)l, f);
    fclose(f);
    return b;
}

/* A NIfTI-1 header with 352-byte offset, for hand-made files. */
static nifti_1_header n1(int nx, int ny, int nz, int nt, int dt, int nbyper)
{
    nifti_1_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = 348;
    h.dim[0] = nt > 1 ? 4 : 3;
    h.dim[1] = (short)nx;
    h.dim[2] = (short)ny;
    h.dim[3] = (short)nz;
    h.dim[4] = (short)nt;
    for (int i = 5; i < 8; i++) h.dim[i] = 1;
    for (int i = 0; i < 8; i++) h.pixdim[i] = 1;
    h.datatype = (short)dt;
    h.bitpix = (short)(8 * nbyper);
    h.vox_offset = 352;
    h.sform_code = 1;
    h.srow_x[0] = h.srow_y[1] = h.srow_z[2] = 1;
    memcpy(h.magic, "n+1", 4);
    return h;
}

static void put_n1(const char *path, const nifti_1_header *h, const void *data, size_t n)
{
    uint8_t hb[352];
    memset(hb, 0, sizeof hb);
    memcpy(hb, h, 348);
    put(path, hb, 352, data, n);
}

/* Expect a read failure whose message names the file and says `what`. */
static void bad(const char *path, const char *what, const char *name)
{
    dlt_volume v;
    int rc = dlt_volume_read(path, &v);
    const char *m = dlt_errmsg();
    CHECK(rc < 0 && strstr(m, path) && strstr(m, what) && !v.data && !v.hdr, "%s: [%s]", name, m);
}

static void test_datatypes(void)
{
    /* 2x2x1 of each type with values that stress signedness and range. */
    struct { int dt, nb; const char *name; double vals[4]; } T[] = {
        {DT_UINT8, 1, "uint8", {0, 1, 200, 255}},
        {DT_INT8, 1, "int8", {-128, -1, 0, 127}},
        {DT_INT16, 2, "int16", {-32768, -1000, 0, 32767}},
        {DT_UINT16, 2, "uint16", {0, 1, 40000, 65535}},
        {DT_INT32, 4, "int32", {-2147483648.0, -5, 7, 2147483647.0}},
        {DT_UINT32, 4, "uint32", {0, 3, 3000000000.0, 4294967295.0}},
        {DT_INT64, 8, "int64", {-9e15, -1, 2, 9e15}},
        {DT_UINT64, 8, "uint64", {0, 1, 1e12, 1.8e19}},
        {DT_FLOAT32, 4, "float32", {-1.5, 0, 3.25, 1e30}},
        {DT_FLOAT64, 8, "float64", {-1e-3, 0, 0.1, 1e300}},
    };
    for (size_t t = 0; t < sizeof T / sizeof T[0]; t++) {
        for (int variant = 0; variant < 4; variant++) { /* plain, gz, scaled, big-endian */
            nifti_1_header h = n1(2, 2, 1, 1, T[t].dt, T[t].nb);
            uint8_t data[32];
            for (int i = 0; i < 4; i++) {
                double x = T[t].vals[i];
                void *p = data + i * T[t].nb;
                switch (T[t].dt) {
                case DT_UINT8: *(uint8_t *)p = (uint8_t)x; break;
                case DT_INT8: *(int8_t *)p = (int8_t)x; break;
                case DT_INT16: *(int16_t *)p = (int16_t)x; break;
                case DT_UINT16: *(uint16_t *)p = (uint16_t)x; break;
                case DT_INT32: *(int32_t *)p = (int32_t)x; break;
                case DT_UINT32: *(uint32_t *)p = (uint32_t)x; break;
                case DT_INT64: *(int64_t *)p = (int64_t)x; break;
                case DT_UINT64: *(uint64_t *)p = (uint64_t)x; break;
                case DT_FLOAT32: *(float *)p = (float)x; break;
                case DT_FLOAT64: *(double *)p = x; break;
                }
            }
            double slope = 1, inter = 0;
            if (variant == 2) {
                h.scl_slope = 0.5f;
                h.scl_inter = -3;
                slope = 0.5;
                inter = -3;
            }
            if (variant == 3) {
                if (T[t].nb > 1) nifti_swap_Nbytes(4, T[t].nb, data);
                swap_nifti_header(&h, 1);
            }
            const char *path = tmp(variant == 1 ? "dt.nii.gz" : "dt.nii");
            put_n1(path, &h, data, 4 * (size_t)T[t].nb);
            dlt_volume v;
            int rc = dlt_volume_read(path, &v);
            int ok = rc == 0 && v.nx == 2 && v.ny == 2 && v.nz == 1 && v.nc == 1;
            for (int i = 0; ok && i < 4; i++) {
                double x = T[t].vals[i];
                if (T[t].dt == DT_FLOAT32) x = (float)x;
                ok &= v.data[i] == (float)(x * slope + inter);
            }
            ok = ok && strcmp(dlt_volume_datatype(&v), T[t].name) == 0;
            CHECK(ok, "read %s (%s)%s", T[t].name, (const char *[]){"plain", "gzip", "scaled", "big-endian"}[variant],
                  rc ? dlt_errmsg() : "");
            dlt_volume_free(&v);
        }
    }
    /* slope 0 means no scaling, whatever the intercept */
    nifti_1_header h = n1(2, 1, 1, 1, DT_INT16, 2);
    h.scl_slope = 0;
    h.scl_inter = 100;
    int16_t d[2] = {5, -7};
    put_n1(tmp("s0.nii"), &h, d, sizeof d);
    dlt_volume v;
    CHECK(dlt_volume_read(tmp("s0.nii"), &v) == 0 && v.data[0] == 5 && v.data[1] == -7, "slope 0: no scaling");
    dlt_volume_free(&v);
    /* NIfTI-2 with int64 dims field and a double sform */
    nifti_2_header h2;
    memset(&h2, 0, sizeof h2);
    h2.sizeof_hdr = 540;
    memcpy(h2.magic, "n+2\0\r\n\032\n", 8);
    h2.datatype = DT_INT16;
    h2.bitpix = 16;
    h2.dim[0] = 3;
    h2.dim[1] = 3;
    h2.dim[2] = h2.dim[3] = 1;
    for (int i = 0; i < 8; i++) h2.pixdim[i] = 1;
    h2.vox_offset = 544;
    h2.sform_code = 2;
    h2.srow_x[0] = 0.1234567890123;
    h2.srow_y[1] = 2;
    h2.srow_z[2] = 3;
    h2.srow_x[3] = -100.000000001;
    h2.scl_slope = 2;
    h2.scl_inter = 1;
    uint8_t hb[544] = {0};
    memcpy(hb, &h2, 540);
    int16_t d3[3] = {1, 2, -3};
    put(tmp("v2.nii.gz"), hb, 544, d3, sizeof d3);
    int rc = dlt_volume_read(tmp("v2.nii.gz"), &v);
    CHECK(rc == 0 && v.nx == 3 && v.data[2] == -5 && v.affine[0][0] == 0.1234567890123 && v.affine[0][3] == -100.000000001 &&
              dlt_volume_nifti_version(&v) == 2,
          "NIfTI-2: dims, scaling, double affine %s", rc ? dlt_errmsg() : "");
    if (rc == 0) {
        /* a NIfTI-2 source is written as NIfTI-2, doubles intact */
        dlt_volume o;
        dlt_volume_like(&o, &v, 1, 0);
        o.data[1] = 42;
        dlt_volume_write(tmp("v2o.nii"), &o, NULL);
        dlt_volume r;
        rc = dlt_volume_read(tmp("v2o.nii"), &r);
        CHECK(rc == 0 && dlt_volume_nifti_version(&r) == 2 && r.affine[0][0] == 0.1234567890123 && r.data[1] == 42,
              "NIfTI-2 source written as NIfTI-2");
        dlt_volume_free(&r);
        dlt_volume_free(&o);
    }
    dlt_volume_free(&v);
}

static void test_two_file_and_4d(void)
{
    nifti_1_header h = n1(2, 2, 2, 1, DT_UINT8, 1);
    memcpy(h.magic, "ni1", 4);
    h.vox_offset = 0;
    uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    put(tmp("pair.hdr"), &h, 348, NULL, 0);
    put(tmp("pair.img"), d, 8, NULL, 0);
    dlt_volume v;
    int rc = dlt_volume_read(tmp("pair.hdr"), &v);
    CHECK(rc == 0 && v.data[7] == 8, "two-file .hdr/.img %s", rc ? dlt_errmsg() : "");
    dlt_volume_free(&v);

    /* 4-D with a trailing 1 is 3-D; 4-D with 3 volumes is 3 channels */
    h = n1(2, 2, 2, 1, DT_UINT8, 1);
    h.dim[0] = 4;
    h.dim[4] = 1;
    put_n1(tmp("t1.nii"), &h, d, 8);
    rc = dlt_volume_read_label(tmp("t1.nii"), &v);
    CHECK(rc == 0 && v.nc == 1 && v.nz == 2 && v.label[5] == 6, "4-D with dim[4] = 1 is 3-D");
    dlt_volume_free(&v);
    uint8_t d3[24];
    for (int i = 0; i < 24; i++) d3[i] = (uint8_t)i;
    h = n1(2, 2, 2, 3, DT_UINT8, 1);
    put_n1(tmp("c3.nii.gz"), &h, d3, 24);
    rc = dlt_volume_read(tmp("c3.nii.gz"), &v);
    CHECK(rc == 0 && v.nc == 3 && v.data[8 * 2 + 3] == 19, "4-D: channels [nc][nz][ny][nx]");
    if (rc == 0) {
        dlt_volume_write(tmp("c3o.nii"), &v, NULL);
        dlt_volume r;
        rc = dlt_volume_read(tmp("c3o.nii"), &r);
        CHECK(rc == 0 && r.nc == 3 && !memcmp(r.data, v.data, 24 * 4), "4-D round trip");
        dlt_volume_free(&r);
    }
    dlt_volume_free(&v);
    rc = dlt_volume_read_label(tmp("c3.nii.gz"), &v);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "channel"), "multi-channel label refused: %s", dlt_errmsg());
}

static void test_labels(void)
{
    float f[4] = {0, 1, 13, 2};
    nifti_1_header h = n1(2, 2, 1, 1, DT_FLOAT32, 4);
    put_n1(tmp("lf.nii"), &h, f, sizeof f);
    dlt_volume v;
    int rc = dlt_volume_read_label(tmp("lf.nii"), &v);
    CHECK(rc == 0 && v.label && !v.data && v.label[2] == 13, "float32 label with integer values reads");
    dlt_volume_free(&v);
    f[3] = 2.5f;
    put_n1(tmp("lf.nii"), &h, f, sizeof f);
    rc = dlt_volume_read_label(tmp("lf.nii"), &v);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "(1,1,0)") && strstr(dlt_errmsg(), "2.5") && strstr(dlt_errmsg(), "lf.nii"),
          "non-integer label refused: %s", dlt_errmsg());
    int16_t s[4] = {0, 1, -1, 2};
    h = n1(2, 2, 1, 1, DT_INT16, 2);
    put_n1(tmp("ln.nii"), &h, s, sizeof s);
    rc = dlt_volume_read_label(tmp("ln.nii"), &v);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "-1"), "negative label refused: %s", dlt_errmsg());
    int32_t b[4] = {0, 65535, 65536, 2};
    h = n1(2, 2, 1, 1, DT_INT32, 4);
    put_n1(tmp("lb.nii"), &h, b, sizeof b);
    rc = dlt_volume_read_label(tmp("lb.nii"), &v);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "65536"), "label > 65535 refused: %s", dlt_errmsg());
    float nan4[4] = {0, NAN, 0, 0};
    h = n1(2, 2, 1, 1, DT_FLOAT32, 4);
    put_n1(tmp("lnan.nii"), &h, nan4, sizeof nan4);
    CHECK(dlt_volume_read_label(tmp("lnan.nii"), &v) < 0, "NaN label refused");

    /* write: uint8 when max <= 255, else uint16; values intact */
    double A[4][4] = {{2, 0, 0, 1}, {0, 2, 0, 2}, {0, 0, 3, 3}, {0, 0, 0, 1}};
    for (int big = 0; big < 2; big++) {
        dlt_volume l;
        dlt_volume_new(&l, 5, 4, 3, 1, 1, A);
        for (int i = 0; i < 60; i++) l.label[i] = (uint16_t)(big ? i * 1000 : i * 4);
        const char *p = tmp(big ? "l16.nii.gz" : "l8.nii.gz");
        rc = dlt_volume_write(p, &l, "labels");
        dlt_volume r;
        int rr = dlt_volume_read_label(p, &r);
        CHECK(rc == 0 && rr == 0 && !memcmp(r.label, l.label, 60 * 2) &&
                  strcmp(dlt_volume_datatype(&r), big ? "uint16" : "uint8") == 0 && strcmp(dlt_volume_descrip(&r), "labels") == 0,
              "label round trip as %s", big ? "uint16" : "uint8");
        dlt_volume_free(&r);
        dlt_volume_free(&l);
    }
}

/* Geometry: every header field that describes the grid must come back bit
 * for bit in a volume derived from the source (here: a label made like it). */
static void test_geometry(void)
{
    nifti_1_header h = n1(7, 5, 3, 1, DT_INT16, 2);
    h.pixdim[0] = -1; /* qfac */
    h.pixdim[1] = 0.8123457f;
    h.pixdim[2] = 1.1f;
    h.pixdim[3] = 2.9999f;
    h.pixdim[4] = 2.5f; /* TR, kept */
    h.qform_code = 3;
    h.sform_code = 4;
    h.quatern_b = 0.1234567f;
    h.quatern_c = -0.2345678f;
    h.quatern_d = 0.3456789f;
    h.qoffset_x = -123.456789f;
    h.qoffset_y = 98.7654321f;
    h.qoffset_z = 1e-7f;
    float srow[3][4] = {{-0.81f, 0.01f, 0.002f, 101.1f}, {0.003f, 1.09f, -0.1f, -33.3f}, {0.0001f, 0.02f, 2.99f, 7.77f}};
    memcpy(h.srow_x, srow[0], 16);
    memcpy(h.srow_y, srow[1], 16);
    memcpy(h.srow_z, srow[2], 16);
    h.xyzt_units = NIFTI_UNITS_MM | NIFTI_UNITS_SEC;
    h.intent_code = NIFTI_INTENT_LABEL;
    strcpy(h.intent_name, "organs");
    strcpy(h.descrip, "odd geometry");
    h.dim_info = 57;
    h.slice_code = 2;
    h.slice_duration = 0.07f;
    h.toffset = 1.5f;
    h.scl_slope = 1;
    int16_t d[105];
    for (int i = 0; i < 105; i++) d[i] = (int16_t)(i % 7);
    put_n1(tmp("geo.nii.gz"), &h, d, sizeof d);
    dlt_volume v;
    int rc = dlt_volume_read(tmp("geo.nii.gz"), &v);
    CHECK(rc == 0 && v.affine[0][3] == (double)srow[0][3] && v.affine[2][1] == (double)srow[2][1], "sform is the affine");
    if (rc) return;
    CHECK(strcmp(dlt_volume_descrip(&v), "odd geometry") == 0, "descrip read");
    for (int lab = 0; lab < 2; lab++) {
        dlt_volume o;
        dlt_volume_like(&o, &v, 1, lab);
        for (int i = 0; i < 105; i++) {
            if (lab) o.label[i] = (uint16_t)d[i];
            else o.data[i] = (float)d[i] * 0.5f;
        }
        const char *p = tmp(lab ? "geo_l.nii.gz" : "geo_i.nii");
        rc = dlt_volume_write(p, &o, lab ? NULL : "normalised");
        CHECK(rc == 0, "write derived %s", lab ? "label" : "image");
        uint8_t *raw = NULL;
        size_t n = 0;
        if (lab) {
            gzFile g = gzopen(p, "rb");
            raw = malloc(4096);
            n = (size_t)gzread(g, raw, 4096);
            gzclose(g);
        } else {
            raw = slurp(p, &n);
        }
        nifti_1_header w;
        memcpy(&w, raw, 348);
        int same = n >= 352 && w.sizeof_hdr == 348 && !memcmp(w.magic, "n+1", 4) && w.vox_offset == 352;
        same &= !memcmp(w.pixdim, h.pixdim, sizeof h.pixdim);
        same &= w.qform_code == h.qform_code && w.sform_code == h.sform_code;
        same &= !memcmp(&w.quatern_b, &h.quatern_b, 6 * sizeof(float));
        same &= !memcmp(w.srow_x, h.srow_x, 16) && !memcmp(w.srow_y, h.srow_y, 16) && !memcmp(w.srow_z, h.srow_z, 16);
        same &= w.xyzt_units == h.xyzt_units && w.intent_code == h.intent_code && !strcmp(w.intent_name, "organs");
        same &= w.dim_info == h.dim_info && w.slice_code == h.slice_code && w.slice_duration == h.slice_duration &&
                w.toffset == h.toffset;
        same &= !memcmp(w.dim, h.dim, sizeof h.dim);
        CHECK(same, "%s header geometry bit-exact", lab ? "label" : "image");
        CHECK(!strcmp(w.descrip, lab ? "odd geometry" : "normalised"), "descrip %s", lab ? "kept" : "replaced");
        CHECK(w.datatype == (lab ? DT_UINT8 : DT_FLOAT32) && w.bitpix == (lab ? 8 : 32) && w.scl_slope == 0,
              "datatype, bitpix, no scaling");
        free(raw);
        dlt_volume r;
        rc = lab ? dlt_volume_read_label(p, &r) : dlt_volume_read(p, &r);
        CHECK(rc == 0 && !memcmp(r.affine, v.affine, sizeof v.affine) &&
                  (lab ? !memcmp(r.label, o.label, 210) : !memcmp(r.data, o.data, 420)),
              "read back: same affine and voxels");
        dlt_volume_free(&r);
        dlt_volume_free(&o);
    }
    /* qform only (sform_code 0): the quaternion with qfac -1 */
    h.sform_code = 0;
    put_n1(tmp("geoq.nii"), &h, d, sizeof d);
    dlt_volume q;
    rc = dlt_volume_read(tmp("geoq.nii"), &q);
    nifti_dmat44 m = nifti_quatern_to_dmat44(h.quatern_b, h.quatern_c, h.quatern_d, h.qoffset_x, h.qoffset_y, h.qoffset_z,
                                             h.pixdim[1], h.pixdim[2], h.pixdim[3], -1);
    int ok = rc == 0;
    for (int r = 0; ok && r < 3; r++)
        for (int c = 0; c < 4; c++) ok &= q.affine[r][c] == m.m[r][c];
    CHECK(ok && fabs(q.spacing[2] - 2.9999) < 1e-6, "qform affine (qfac -1)");
    /* no qform, no sform: nibabel's centred diag(-dx,dy,dz) */
    h.qform_code = 0;
    put_n1(tmp("geo0.nii"), &h, d, sizeof d);
    dlt_volume z;
    rc = dlt_volume_read(tmp("geo0.nii"), &z);
    CHECK(rc == 0 && z.affine[0][0] == -(double)h.pixdim[1] && z.affine[0][3] == 3 * (double)h.pixdim[1] &&
              z.affine[1][3] == -2 * (double)h.pixdim[2],
          "no transform: nibabel's fallback affine");
    dlt_volume_free(&z);
    dlt_volume_free(&q);
    dlt_volume_free(&v);
}

static void test_new_and_grid(void)
{
    double A[4][4] = {{-3, 0, 0, 140.5}, {0, -3, 0, 130.25}, {0, 0, 3, -95}, {0, 0, 0, 1}};
    dlt_volume v;
    int rc = dlt_volume_new(&v, 6, 5, 4, 2, 0, A);
    CHECK(rc == 0 && v.nc == 2 && v.spacing[0] == 3 && !memcmp(v.affine, A, sizeof A), "new: affine and spacing");
    char code[4];
    dlt_volume_orientation(&v, code);
    CHECK(!strcmp(code, "LPS"), "orientation LPS (%s)", code);
    for (int i = 0; i < 240; i++) v.data[i] = (float)i * 0.25f - 7;
    rc = dlt_volume_write(tmp("new.nii.gz"), &v, "made");
    dlt_volume r;
    rc |= dlt_volume_read(tmp("new.nii.gz"), &r);
    CHECK(rc == 0 && !memcmp(r.affine, A, sizeof A) && !memcmp(r.data, v.data, 240 * 4), "new: write/read round trip");
    int q, s;
    dlt_volume_xform_codes(&r, &q, &s);
    CHECK(q == 1 && s == 1, "new: qform and sform codes 1");
    /* the qform alone gives the same affine */
    CHECK(rc == 0 && dlt_volume_same_grid(&v, &r, 1e-6) == 0, "same grid");
    r.affine[0][3] += 0.5;
    rc = dlt_volume_same_grid(&v, &r, 1e-3);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "origin") && !strstr(dlt_errmsg(), "dims"), "origin differs: %s", dlt_errmsg());
    r.affine[0][3] -= 0.5;
    r.affine[2][2] = 2.5;
    rc = dlt_volume_same_grid(&v, &r, 1e-3);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "spacing 3,3,3 vs 3,3,2.5"), "spacing differs: %s", dlt_errmsg());
    r.affine[2][2] = 3;
    r.affine[0][1] = 0.3;
    r.affine[1][1] = -2.985;
    rc = dlt_volume_same_grid(&v, &r, 1e-3);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "direction of axis j"), "direction differs: %s", dlt_errmsg());
    dlt_volume_free(&r);
    dlt_volume_new(&r, 6, 5, 3, 1, 0, A);
    rc = dlt_volume_same_grid(&v, &r, 1e-3);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "dims 6x5x4 vs 6x5x3"), "dims differ: %s", dlt_errmsg());
    dlt_volume_free(&r);

    double R[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    dlt_volume_new(&r, 2, 2, 2, 1, 1, R);
    dlt_volume_orientation(&r, code);
    CHECK(!strcmp(code, "RAS"), "orientation RAS");
    /* set_geometry: new dims and affine; codes and units kept */
    double B[4][4] = {{0, 0, 1.5, 1}, {-2, 0, 0, 2}, {0, 1, 0, 3}, {0, 0, 0, 1}};
    rc = dlt_volume_set_geometry(&r, 4, 3, 2, B);
    dlt_volume_orientation(&r, code);
    CHECK(rc == 0 && r.nx == 4 && r.label && r.spacing[0] == 2 && r.spacing[2] == 1.5 && !strcmp(code, "PSR"),
          "set_geometry (%s)", code);
    r.label[23] = 300;
    dlt_volume_write(tmp("sg.nii"), &r, NULL);
    dlt_volume t;
    rc = dlt_volume_read_label(tmp("sg.nii"), &t);
    CHECK(rc == 0 && t.nx == 4 && t.nz == 2 && t.label[23] == 300 && !memcmp(t.affine, B, sizeof B), "set_geometry written");
    dlt_volume_free(&t);
    dlt_volume_free(&r);

    /* same volume, same bytes (gzip without timestamps) */
    dlt_volume_write(tmp("d1.nii.gz"), &v, NULL);
    sleep(1);
    dlt_volume_write(tmp("d2.nii.gz"), &v, NULL);
    size_t n1_, n2_;
    uint8_t *a = slurp(tmp("d1.nii.gz"), &n1_), *b = slurp(tmp("d2.nii.gz"), &n2_);
    CHECK(a && b && n1_ == n2_ && !memcmp(a, b, n1_) && a[0] == 0x1f && a[1] == 0x8b, "deterministic gzip output");
    free(a);
    free(b);

    /* atomic write: an unwritable place leaves nothing, a failure keeps the old file */
    rc = dlt_volume_write(tmp("nodir/x.nii"), &v, NULL);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "nodir/x.nii"), "write into a missing folder fails: %s", dlt_errmsg());
    dlt_volume e;
    memset(&e, 0, sizeof e);
    CHECK(dlt_volume_write(tmp("e.nii"), &e, NULL) < 0 && access(tmp("e.nii"), F_OK) != 0, "empty volume refused");
    dlt_volume_free(&v);
}

static void test_stdio(void)
{
    double A[4][4] = {{1, 0, 0, 0}, {0, 2, 0, 0}, {0, 0, 3, 0}, {0, 0, 0, 1}};
    dlt_volume v;
    dlt_volume_new(&v, 3, 3, 3, 1, 0, A);
    for (int i = 0; i < 27; i++) v.data[i] = (float)i;
    /* "-" writes an uncompressed stream to stdout */
    fflush(stdout);
    int saved = dup(1);
    int fd = open(tmp("out.nii"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    int rc = dlt_volume_write("-", &v, NULL);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    size_t n;
    uint8_t *b = slurp(tmp("out.nii"), &n);
    int32_t sz = 0;
    if (b) memcpy(&sz, b, 4);
    CHECK(rc == 0 && n == 352 + 27 * 4 && sz == 348, "write - : plain .nii on stdout (%zu bytes)", n);
    free(b);
    dlt_volume_write(tmp("in.nii.gz"), &v, NULL);
    const char *srcs[] = {tmp("out.nii"), tmp("in.nii.gz")};
    for (int k = 0; k < 2; k++) {
        int s0 = dup(0);
        int f = open(srcs[k], O_RDONLY);
        dup2(f, 0);
        close(f);
        dlt_volume r;
        rc = dlt_volume_read("-", &r);
        dup2(s0, 0);
        close(s0);
        CHECK(rc == 0 && r.nz == 3 && r.data[26] == 26 && r.affine[2][2] == 3, "read - (%s)", k ? "gzip" : "plain");
        dlt_volume_free(&r);
    }
    /* errors on stdin are named "stdin" */
    int s0 = dup(0);
    int f = open("/dev/null", O_RDONLY);
    dup2(f, 0);
    close(f);
    dlt_volume r;
    rc = dlt_volume_read("-", &r);
    dup2(s0, 0);
    close(s0);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "stdin") && strstr(dlt_errmsg(), "empty"), "empty stdin: %s", dlt_errmsg());
    dlt_volume_free(&v);
}

static void test_bad_input(void)
{
    bad(tmp("missing.nii.gz"), "No such file", "missing file");
    bad(dir, "directory", "a directory");
    put(tmp("empty.nii"), NULL, 0, NULL, 0);
    bad(tmp("empty.nii"), "empty", "empty file");
    const char *txt = "hello, this is not a volume\n";
    put(tmp("text.nii"), txt, strlen(txt), NULL, 0);
    bad(tmp("text.nii"), "not a NIfTI", "short text file");
    char junk[2000];
    memset(junk, 'x', sizeof junk);
    put(tmp("junk.nii.gz"), junk, sizeof junk, NULL, 0);
    bad(tmp("junk.nii.gz"), "not a NIfTI", "gzip of junk");
    nifti_1_header h = n1(4, 4, 4, 1, DT_FLOAT32, 4);
    memcpy(h.magic, "xyz", 4);
    put_n1(tmp("magic.nii"), &h, NULL, 0);
    bad(tmp("magic.nii"), "magic", "bad magic");

    /* truncated gzip: the first half of a good file */
    float d[512];
    for (int i = 0; i < 512; i++) d[i] = (float)(i * 7919 % 1000) / 7.0f;
    h = n1(8, 8, 8, 1, DT_FLOAT32, 4);
    put_n1(tmp("good.nii.gz"), &h, d, sizeof d);
    size_t n;
    uint8_t *g = slurp(tmp("good.nii.gz"), &n);
    put2(tmp("trunc.nii.gz"), g, n / 2, NULL, 0, 1);
    bad(tmp("trunc.nii.gz"), "truncated", "truncated gzip");
    put2(tmp("trunc2.nii.gz"), g, n - 4, NULL, 0, 1); /* only the length trailer missing */
    bad(tmp("trunc2.nii.gz"), "truncated", "gzip without its trailer");
    g[n / 2] ^= 0x55;
    g[n / 2 + 1] ^= 0xaa;
    put2(tmp("corrupt.nii.gz"), g, n, NULL, 0, 1);
    dlt_volume v;
    int rc = dlt_volume_read(tmp("corrupt.nii.gz"), &v);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "corrupt.nii.gz") && (strstr(dlt_errmsg(), "gzip") || strstr(dlt_errmsg(), "truncated")),
          "corrupt gzip: %s", dlt_errmsg());
    free(g);
    /* truncated plain file, and a header that lies about the size */
    put_n1(tmp("short.nii"), &h, d, sizeof d - 100);
    bad(tmp("short.nii"), "truncated", "truncated .nii");
    h = n1(8, 8, 8, 1, DT_FLOAT32, 4);
    h.dim[3] = 30000; /* claims 7.5 MB of data, holds 2 KB */
    put_n1(tmp("lie.nii"), &h, d, sizeof d);
    bad(tmp("lie.nii"), "the file has", "header lies (plain)");
    put_n1(tmp("lie.nii.gz"), &h, d, sizeof d);
    bad(tmp("lie.nii.gz"), "truncated", "header lies (gzip)");
    float zeros[512] = {0};
    h.dim[3] = 300; /* compresses well enough to pass the ratio check */
    put_n1(tmp("lie2.nii.gz"), &h, zeros, sizeof zeros);
    bad(tmp("lie2.nii.gz"), "voxel data ends after 2048 of the 76800 bytes", "header lies (gzip, compressible)");
    h = n1(8, 8, 8, 1, DT_FLOAT32, 4);
    h.vox_offset = 1e9f;
    put_n1(tmp("off.nii"), &h, d, sizeof d);
    bad(tmp("off.nii"), "truncated", "vox_offset beyond the file");
    h.vox_offset = 100;
    put_n1(tmp("off2.nii"), &h, d, sizeof d);
    bad(tmp("off2.nii"), "vox_offset", "vox_offset inside the header");
    h.vox_offset = NAN;
    put_n1(tmp("off3.nii"), &h, d, sizeof d);
    bad(tmp("off3.nii"), "vox_offset", "vox_offset NaN");

    h = n1(8, 8, 8, 1, DT_FLOAT32, 4);
    h.dim[2] = 0;
    put_n1(tmp("zero.nii"), &h, d, sizeof d);
    bad(tmp("zero.nii"), "dimension 2 is 0", "zero dim");
    h.dim[2] = -5;
    put_n1(tmp("neg.nii"), &h, d, sizeof d);
    bad(tmp("neg.nii"), "dimension 2 is -5", "negative dim");
    h.dim[2] = 8;
    h.dim[0] = 9;
    put_n1(tmp("ndim.nii"), &h, d, sizeof d);
    bad(tmp("ndim.nii"), "dim[0]", "dim[0] out of range");
    /* NIfTI-2 dims whose product overflows int64 */
    nifti_2_header h2;
    memset(&h2, 0, sizeof h2);
    h2.sizeof_hdr = 540;
    memcpy(h2.magic, "n+2\0\r\n\032\n", 8);
    h2.datatype = DT_FLOAT32;
    h2.bitpix = 32;
    h2.dim[0] = 3;
    h2.dim[1] = h2.dim[2] = h2.dim[3] = (int64_t)1 << 30;
    h2.vox_offset = 544;
    uint8_t hb[544] = {0};
    memcpy(hb, &h2, 540);
    put(tmp("ovf.nii"), hb, 544, d, sizeof d);
    bad(tmp("ovf.nii"), "overflows", "dims overflow");
    /* dims beyond the memory limit: refused before any allocation */
    h = n1(32767, 32767, 32767, 1, DT_UINT8, 1);
    put_n1(tmp("huge.nii.gz"), &h, d, sizeof d);
    bad(tmp("huge.nii.gz"), "DLT_MAX_ALLOC", "dims exceed the memory limit");
    setenv("DLT_MAX_ALLOC", "1K", 1);
    h = n1(8, 8, 8, 1, DT_FLOAT32, 4);
    put_n1(tmp("limit.nii"), &h, d, sizeof d);
    bad(tmp("limit.nii"), "DLT_MAX_ALLOC", "DLT_MAX_ALLOC honoured");
    unsetenv("DLT_MAX_ALLOC");
    h = n1(8, 8, 8, 1, DT_COMPLEX64, 8);
    put_n1(tmp("cplx.nii"), &h, d, sizeof d);
    bad(tmp("cplx.nii"), "not supported", "complex datatype");
    h = n1(8, 8, 8, 1, DT_FLOAT32, 4);
    h.scl_slope = 2;
    h.scl_inter = INFINITY;
    put_n1(tmp("inter.nii"), &h, d, sizeof d);
    bad(tmp("inter.nii"), "scl_inter", "valid slope, infinite intercept");
    /* header only: cheap, and still checks a plain file's length */
    h = n1(8, 8, 8, 1, DT_FLOAT32, 4);
    put_n1(tmp("hdr.nii"), &h, d, sizeof d);
    rc = dlt_volume_read_header(tmp("hdr.nii"), &v);
    CHECK(rc == 0 && v.nx == 8 && !v.data && !v.label && v.hdr, "read_header: dims without data");
    dlt_volume_free(&v);
    rc = dlt_volume_read_header(tmp("short.nii"), &v);
    CHECK(rc < 0 && strstr(dlt_errmsg(), "short.nii"), "read_header notices truncation: %s", dlt_errmsg());
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/dlt_test_volume.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_datatypes();
    test_two_file_and_4d();
    test_labels();
    test_geometry();
    test_new_and_grid();
    test_stdio();
    test_bad_input();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    return check_done();
}
