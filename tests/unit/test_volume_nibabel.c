/* test_volume_nibabel.c - conformance with nibabel on the real scans in
 * ${DLT_SHARED:-ROOT/../shared}/data (nifti-zoo, ct-sample, a few
 * msd-hippocampus cases): for every file, the voxel values after scaling
 * (CRC32 of the float32 array, x fastest, so bit for bit) and the affine
 * must equal what nibabel gives (get_fdata(), .affine), and a label read
 * must succeed exactly when nibabel's values are integers in 0..65535, with
 * the same values. Skips when the data or /usr/bin/python3 + nibabel is
 * absent. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/volume.h"

#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/* One line per file: path nx ny nz nc crc32(float32) labelcrc|none a00..a33 */
static const char *PY =
    "import sys, zlib\n"
    "try:\n"
    "    import numpy as np, nibabel as nib\n"
    "except Exception:\n"
    "    print(\"NONIBABEL\"); sys.exit(0)\n"
    "for f in sys.argv[1:]:\n"
    "    im = nib.load(f)\n"
    "    d = np.asarray(im.get_fdata())\n"
    "    sh = list(d.shape) + [1] * (4 - d.ndim)\n"
    "    d4 = d.reshape(sh[:3] + [-1], order=\"F\")\n"
    "    f32 = d4.astype(np.float32)\n"
    "    crc = zlib.crc32(f32.tobytes(order=\"F\")) & 0xffffffff\n"
    "    lab = \"none\"\n"
    "    if d4.shape[3] == 1 and np.all(np.isfinite(d4)) and np.all(d4 == np.floor(d4)) and d4.min() >= 0 and d4.max() <= 65535:\n"
    "        lab = str(zlib.crc32(d4.astype(np.uint16).tobytes(order=\"F\")) & 0xffffffff)\n"
    "    aff = \" \".join(repr(float(x)) for x in im.affine.ravel())\n"
    "    print(f, sh[0], sh[1], sh[2], int(np.prod(sh[3:])), crc, lab, aff)\n";

static int add_files(char **list, int n, int max, const char *dir, int limit)
{
    DIR *d = opendir(dir);
    if (!d) return n;
    char *names[4096];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) && k < 4096)
        if (strstr(e->d_name, ".nii")) names[k++] = strdup(e->d_name);
    closedir(d);
    for (int i = 0; i < k; i++) /* sorted, so the chosen few are stable */
        for (int j = i + 1; j < k; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    for (int i = 0; i < k; i++) {
        if (i < limit && n < max) {
            char p[PATH_MAX + 300];
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            list[n++] = strdup(p);
        }
        free(names[i]);
    }
    return n;
}

int main(void)
{
    char root[PATH_MAX], data[PATH_MAX + 32];
    ssize_t l = readlink("/proc/self/exe", root, sizeof root - 1);
    if (l <= 0) return 1;
    root[l] = 0;
    char *r = dirname(dirname(dirname(root))); /* ROOT/build/tests/test_x */
    const char *sh = getenv("DLT_SHARED");
    if (sh && *sh) snprintf(data, sizeof data, "%s/data", sh);
    else snprintf(data, sizeof data, "%s/../shared/data", r);
    if (access(data, R_OK) != 0 || access("/usr/bin/python3", X_OK) != 0) {
        SKIP("no shared data (%s) or no /usr/bin/python3", data);
        return check_done();
    }
    char *files[64];
    int n = 0;
    char sub[PATH_MAX + 64];
    const char *subs[] = {"nifti-zoo", "ct-sample", "msd-hippocampus/imagesTr", "msd-hippocampus/labelsTr"};
    int limits[] = {100, 100, 4, 4};
    for (int i = 0; i < 4; i++) {
        snprintf(sub, sizeof sub, "%s/%s", data, subs[i]);
        n = add_files(files, n, 64, sub, limits[i]);
    }
    if (n == 0) {
        SKIP("no NIfTI files under %s", data);
        return check_done();
    }
    /* the script goes in single quotes; paths likewise (none has a quote) */
    size_t cap = strlen(PY) + 64;
    for (int i = 0; i < n; i++) cap += strlen(files[i]) + 3;
    char *cmd = malloc(cap);
    snprintf(cmd, cap, "/usr/bin/python3 -c '%s'", PY);
    for (int i = 0; i < n; i++) {
        strcat(cmd, " '");
        strcat(cmd, files[i]);
        strcat(cmd, "'");
    }
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) {
        SKIP("cannot run python3");
        return check_done();
    }
    char line[8192];
    int seen = 0;
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "NONIBABEL", 9) == 0) {
            SKIP("nibabel not importable by /usr/bin/python3");
            break;
        }
        char path[4096], lab[32];
        long long nx, ny, nz, nc;
        unsigned long crc;
        double a[16];
        int k = sscanf(line,
                       "%4095s %lld %lld %lld %lld %lu %31s %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf",
                       path, &nx, &ny, &nz, &nc, &crc, lab, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7], &a[8],
                       &a[9], &a[10], &a[11], &a[12], &a[13], &a[14], &a[15]);
        if (k != 23) {
            CHECK(0, "python output line: %s", line);
            continue;
        }
        seen++;
        const char *name = strstr(path, "/data/") ? strstr(path, "/data/") + 6 : path;
        dlt_volume v;
        int rc = dlt_volume_read(path, &v);
        if (!CHECK(rc == 0, "%s: reads (%s)", name, rc ? dlt_errmsg() : dlt_volume_datatype(&v))) continue;
        CHECK(v.nx == nx && v.ny == ny && v.nz == nz && v.nc == nc, "%s: dims %lldx%lldx%lld x%lld", name, nx, ny, nz, nc);
        uint32_t c = dlt_crc32(0, v.data, (size_t)(v.nx * v.ny * v.nz * v.nc) * sizeof(float));
        CHECK(c == crc, "%s: voxel values equal nibabel's get_fdata (crc %08x vs %08lx)", name, c, crc);
        double err = 0;
        for (int i = 0; i < 16; i++) {
            double e = fabs(v.affine[i / 4][i % 4] - a[i]);
            if (e > err) err = e;
        }
        CHECK(err < 1e-5, "%s: affine equals nibabel's (max diff %.3g mm)", name, err);
        dlt_volume_free(&v);
        rc = dlt_volume_read_label(path, &v);
        if (strcmp(lab, "none") == 0) {
            CHECK(rc < 0 && strstr(dlt_errmsg(), "label"), "%s: not integers, refused as a label (%s)", name, dlt_errmsg());
        } else {
            uint32_t lc = rc ? 0 : dlt_crc32(0, v.label, (size_t)(v.nx * v.ny * v.nz) * 2);
            CHECK(rc == 0 && lc == strtoul(lab, NULL, 10), "%s: label values equal nibabel's %s", name, rc ? dlt_errmsg() : "");
        }
        dlt_volume_free(&v);
    }
    int st = pclose(p);
    if (seen || st != 0) CHECK(seen == n && st == 0, "nibabel answered for all %d files (%d, exit %d)", n, seen, st);
    for (int i = 0; i < n; i++) free(files[i]);
    return check_done();
}
