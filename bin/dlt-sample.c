/* dlt-sample - subjects (images + label) -> a patch stream on stdout.
 *
 *   dlt-sample --list train.tsv --patch 64 --sampler balanced --seed 1 | dlt-train ...
 *   dlt-sample --image t1.nii.gz --image t2.nii.gz --label seg.nii.gz --count 100 > p.dltp
 *
 * Options -> dlt_sample_config; the work is in lib/data/sample*.c and
 * lib/data/augment.c. Records are made in parallel batches (each record depends
 * only on the seed and its index) and written in order. */
#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/patches.h"
#include "dlt/sample.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static int parse_range(const char *s, double r[2])
{
    int n;
    if (dlt_parse_doubles(s, 2, r, &n) || n != 2 || !(r[0] <= r[1])) return -1;
    return 0;
}

/* LO,HI[,P] with LO <= HI and P in [0, 1] (default 1); nvals 1: X[,P]. */
static int parse_prob(const char *s, int nvals, double *r, double *p)
{
    double v[3];
    int n;
    if (dlt_parse_doubles(s, 3, v, &n) || n < nvals || n > nvals + 1) return -1;
    *p = n > nvals ? v[nvals] : 1.0;
    for (int i = 0; i < nvals; i++) r[i] = v[i];
    if (nvals == 2 && !(r[0] <= r[1])) return -1;
    return *p >= 0 && *p <= 1 ? 0 : -1;
}

/* --class-names FILE: "id<TAB>name" lines (a header row and '#' lines are
 * skipped) -> "name0,name1,..." with "classN" for ids not named. */
static int read_class_names(const char *path, int nclasses, char **out)
{
    uint8_t *buf;
    int64_t len;
    int rc = dlt_read_file(path, &buf, &len);
    if (rc) return rc;
    char **names = calloc((size_t)nclasses, sizeof(char *));
    char *text = malloc((size_t)len + 1);
    if (!names || !text) {
        dlt_free(buf);
        free(names);
        free(text);
        return dlt_err(DLT_ENOMEM, "out of memory");
    }
    memcpy(text, buf, (size_t)len);
    text[len] = 0;
    dlt_free(buf);
    int lineno = 0;
    rc = 0;
    for (char *line = text, *next; line && !rc; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        if (!n || line[0] == '#') continue;
        char *tab = strchr(line, '\t'), *end;
        if (!tab) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: want 'id<TAB>name'", path, lineno);
            break;
        }
        *tab = 0;
        long id = strtol(line, &end, 10);
        if (end == line || *end) {
            if (lineno == 1) continue; /* a header row */
            rc = dlt_err(DLT_EFORMAT, "%s:%d: class id '%s' is not a number", path, lineno, line);
        } else if (id < 0 || id >= nclasses) {
            rc = dlt_err(DLT_EINVAL, "%s:%d: class id %ld, but there are %d classes (0..%d)", path, lineno, id,
                         nclasses, nclasses - 1);
        } else if (strchr(tab + 1, ',')) {
            rc = dlt_err(DLT_EFORMAT, "%s:%d: class name '%s' contains a comma", path, lineno, tab + 1);
        } else {
            free(names[id]);
            names[id] = strdup(tab + 1);
        }
    }
    size_t total = 1;
    for (int c = 0; c < nclasses; c++) total += (names[c] ? strlen(names[c]) : 16) + 1;
    char *s = rc ? NULL : malloc(total);
    if (s) {
        size_t k = 0;
        for (int c = 0; c < nclasses; c++) {
            if (names[c]) k += (size_t)sprintf(s + k, "%s%s", c ? "," : "", names[c]);
            else k += (size_t)sprintf(s + k, "%sclass%d", c ? "," : "", c);
        }
    } else if (!rc) {
        rc = dlt_err(DLT_ENOMEM, "out of memory");
    }
    for (int c = 0; c < nclasses; c++) free(names[c]);
    free(names);
    free(text);
    *out = s;
    return rc;
}

static const char *mib(int64_t b, char *buf)
{
    snprintf(buf, 32, "%.1f MiB", b / 1048576.0);
    return buf;
}

/* Report a write failure; a consumer that went away (EPIPE, with SIGPIPE
 * ignored by our parent) is a normal end, not an error. */
static int write_failed(void)
{
    if (errno == EPIPE) exit(0);
    dlt_error("stdout: %s", dlt_errmsg());
    return 1;
}

/* ---- the command line (dlt/cli.h) ---- */
static const char *list, *labelpath, *namesfile, *weights;
static const char *images[64];
static int nimages, loglevel;
static int64_t classes, per_volume = 1, epochs, count = -1, skip, seed = 1;
static dlt_sample_config cfg;

static int opt_image(const dlt_option *o, const char *arg)
{
    if (nimages == 64) return dlt_err(DLT_EINVAL, "too many --image options (64 at most)");
    images[nimages++] = arg;
    return 0;
}
static int opt_sampler(const dlt_option *o, const char *arg)
{
    return (cfg.sampler = dlt_sampler_kind(arg)) < 0 ? dlt_err(DLT_EINVAL, "'%s': want random, balanced or foreground", arg) : 0;
}
static int opt_patch(const dlt_option *o, const char *arg)
{
    return dlt_parse_int3(arg, 1, 1024, cfg.patch) ? dlt_err(DLT_EINVAL, "'%s': want X or X,Y,Z in 1..1024", arg) : 0;
}
static int opt_pad(const dlt_option *o, const char *arg)
{
    return (cfg.pad = dlt_pad_mode(arg)) < 0 ? dlt_err(DLT_EINVAL, "'%s': want zero, edge, reflect or none", arg) : 0;
}
static int opt_flip(const dlt_option *o, const char *arg)
{
    char *dup = strdup(arg), *sv = NULL;
    int bad = !dup;
    for (char *t = dup ? strtok_r(dup, ",", &sv) : NULL; t; t = strtok_r(NULL, ",", &sv)) {
        if (!strcmp(t, "x")) cfg.aug.flip[0] = 1;
        else if (!strcmp(t, "y")) cfg.aug.flip[1] = 1;
        else if (!strcmp(t, "z")) cfg.aug.flip[2] = 1;
        else bad = 1;
    }
    free(dup);
    return bad ? dlt_err(DLT_EINVAL, "'%s': want axes among x,y,z (e.g. x,y)", arg) : 0;
}
static int opt_scale(const dlt_option *o, const char *arg)
{
    return parse_range(arg, cfg.aug.scale) || cfg.aug.scale[0] < 0
               ? dlt_err(DLT_EINVAL, "'%s': want LO,HI with 0 <= LO <= HI", arg) : 0;
}
static int opt_gamma(const dlt_option *o, const char *arg)
{
    return parse_range(arg, cfg.aug.gamma) || !(cfg.aug.gamma[0] > 0)
               ? dlt_err(DLT_EINVAL, "'%s': want LO,HI with 0 < LO <= HI", arg) : 0;
}
static int opt_elastic(const dlt_option *o, const char *arg)
{
    double v[2];
    int n;
    if (dlt_parse_doubles(arg, 2, v, &n) || n != 2 || !(v[0] >= 0 && v[0] <= 64) || !(v[1] > 0 && v[1] <= 256))
        return dlt_err(DLT_EINVAL, "'%s': want ALPHA,SIGMA in voxels (0 <= ALPHA <= 64, SIGMA > 0)", arg);
    cfg.aug.elastic_alpha = v[0], cfg.aug.elastic_sigma = v[1];
    return 0;
}
static int opt_rotate(const dlt_option *o, const char *arg)
{
    return parse_prob(arg, 1, &cfg.aug.rotate, &cfg.aug.rotate_p) || !(cfg.aug.rotate > 0 && cfg.aug.rotate <= 180)
               ? dlt_err(DLT_EINVAL, "'%s': want DEG[,P] with 0 < DEG <= 180 and P in [0,1]", arg) : 0;
}
static int opt_sscale(const dlt_option *o, const char *arg)
{
    return parse_prob(arg, 2, cfg.aug.sscale, &cfg.aug.sscale_p) || !(cfg.aug.sscale[0] > 0 && cfg.aug.sscale[1] <= 4)
               ? dlt_err(DLT_EINVAL, "'%s': want LO,HI[,P] with 0 < LO <= HI <= 4 and P in [0,1]", arg) : 0;
}
static int opt_blur(const dlt_option *o, const char *arg)
{
    return parse_prob(arg, 2, cfg.aug.blur, &cfg.aug.blur_p) || !(cfg.aug.blur[0] > 0 && cfg.aug.blur[1] <= 16)
               ? dlt_err(DLT_EINVAL, "'%s': want LO,HI[,P] with 0 < LO <= HI <= 16 voxels and P in [0,1]", arg) : 0;
}
static int opt_contrast(const dlt_option *o, const char *arg)
{
    return parse_prob(arg, 2, cfg.aug.contrast, &cfg.aug.contrast_p) || !(cfg.aug.contrast[0] > 0)
               ? dlt_err(DLT_EINVAL, "'%s': want LO,HI[,P] with 0 < LO <= HI and P in [0,1]", arg) : 0;
}
static int opt_lowres(const dlt_option *o, const char *arg)
{
    return parse_prob(arg, 2, cfg.aug.lowres, &cfg.aug.lowres_p) || !(cfg.aug.lowres[0] > 0 && cfg.aug.lowres[1] <= 1)
               ? dlt_err(DLT_EINVAL, "'%s': want LO,HI[,P] with 0 < LO <= HI <= 1 and P in [0,1]", arg) : 0;
}

static dlt_option opts[] = {
    DLT_OPT_GROUP("input:"),
    DLT_OPT_STR('l', "list", &list, "FILE",
                "TSV: id, image(s), label; header row 'id image label' or\n'id image1 image2 ... label'; paths relative to FILE"),
    DLT_OPT_CALL('i', "image", opt_image, "FILE", "an image (repeat for channels)"),
    DLT_OPT_STR('L', "label", &labelpath, "FILE", "its label volume"),
    DLT_OPT_I64(0, "classes", &classes, "N", 1, 65536, "class count (default: largest label + 1)"),
    DLT_OPT_STR(0, "class-names", &namesfile, "FILE", "TSV 'id name' lines, recorded in the header"),
    DLT_OPT_GROUP("sampling:"),
    DLT_OPT_CALL('s', "sampler", opt_sampler, "KIND", "random | balanced | foreground (default random)"),
    DLT_OPT_CALL('p', "patch", opt_patch, "X[,Y,Z]", "patch size in voxels (default 64)"),
    DLT_OPT_CALL(0, "pad", opt_pad, "MODE", "zero | edge | reflect | none (default zero)"),
    DLT_OPT_STR(0, "class-weights", &weights, "W,..", "balanced: relative weight per class"),
    DLT_OPT_DBL(0, "fg-fraction", &cfg.fg_fraction, "F", 0, 1, 0,
                "foreground: fraction of patches centred on foreground (0.33)"),
    DLT_OPT_GROUP("counts:"),
    DLT_OPT_I64('n', "per-volume", &per_volume, "N", 1, 1000000, "patches per subject per epoch (default 1)"),
    DLT_OPT_I64('e', "epochs", &epochs, "N", 1, INT64_MAX, "stop after N epochs (default: endless)"),
    DLT_OPT_I64('c', "count", &count, "N", 0, INT64_MAX, "stop after N records"),
    DLT_OPT_I64(0, "skip", &skip, "N", 0, INT64_MAX, "start at record N (resume a stream exactly)"),
    DLT_OPT_FLAG(0, "shuffle", &cfg.shuffle, 1, "permute each epoch's records across subjects"),
    DLT_OPT_I64(0, "seed", &seed, "S", 0, INT64_MAX, "RNG seed (default 1)"),
    DLT_OPT_GROUP("augmentation (image and label together where geometric):"),
    DLT_OPT_CALL(0, "flip", opt_flip, "AXES", "random flips along these axes, e.g. x,y,z"),
    DLT_OPT_FLAG(0, "rot90", &cfg.aug.rot90, 1, "random in-plane (x-y) quarter turns (needs X == Y)"),
    DLT_OPT_DBL(0, "noise", &cfg.aug.noise, "SIGMA", 0, HUGE_VAL, 0, "Gaussian noise per voxel"),
    DLT_OPT_DBL(0, "offset", &cfg.aug.offset, "SIGMA", 0, HUGE_VAL, 0, "Gaussian offset per channel"),
    DLT_OPT_CALL(0, "scale", opt_scale, "LO,HI", "intensity scale factor"),
    DLT_OPT_CALL(0, "gamma", opt_gamma, "LO,HI", "gamma (on the patch's min-max range)"),
    DLT_OPT_CALL(0, "elastic", opt_elastic, "A,S", "elastic warp: displacement sd A voxels, smoothness S voxels"),
    DLT_OPT_GROUP("  nnU-Net's transforms, each on a patch with probability P (default 1;\n"
                  "  nnU-Net: --rotate 30,0.2 --spatial-scale 0.7,1.4,0.2 --blur 0.5,1,0.2\n"
                  "  --contrast 0.75,1.25,0.15 --low-res 0.5,1,0.25); rotation and scaling resample\n"
                  "  from a larger region"),
    DLT_OPT_CALL(0, "rotate", opt_rotate, "DEG[,P]", "rotate about x, y and z by angles in [-DEG, DEG]"),
    DLT_OPT_CALL(0, "spatial-scale", opt_sscale, "LO,HI[,P]", "sample a region LO..HI times the patch (>1: zoom out)"),
    DLT_OPT_CALL(0, "blur", opt_blur, "LO,HI[,P]", "Gaussian blur, sigma LO..HI voxels"),
    DLT_OPT_CALL(0, "contrast", opt_contrast, "LO,HI[,P]", "contrast factor about the patch mean, range kept"),
    DLT_OPT_CALL(0, "low-res", opt_lowres, "LO,HI[,P]", "down to LO..HI of the resolution and back"),
    DLT_OPT_GROUP("other:"),
    DLT_OPT_COMMON(&loglevel),
    DLT_OPT_END,
};

static const dlt_cli cli = {
    "dlt-sample", "(--list FILE | --image IMG [--image IMG2...] [--label SEG]) [options] > stream",
    "Write a patch stream (dlt-patches(5)) of patches sampled from the subjects.", opts,
    "Without --epochs or --count the stream is endless: the consumer (dlt-train) stops it.\n"
    "DLT_THREADS sets the number of threads.\nSee dlt-sample(1).",
    NULL};

/* The subjects, loaded; *maxlabel the largest label, *labelled whether
 * they have label volumes (all or none). 0, or 1 (reported). */
static int load_subjects(dlt_subject **out, int *nout, int *maxlabel_out, int *labelled_out)
{
    dlt_subject *subj = NULL;
    int nsubj = 0, rc;
    if (list) {
        if ((rc = dlt_sample_list_read(list, &subj, &nsubj))) {
            dlt_error("%s", dlt_errmsg());
            return 1;
        }
    } else {
        subj = calloc(1, sizeof *subj);
        nsubj = 1;
        if (!subj || (rc = dlt_subject_from_paths(subj, images, nimages, labelpath))) {
            dlt_error("%s", dlt_errmsg());
            return 1;
        }
    }
    dlt_progress prog;
    if (isatty(2) && loglevel > 0) dlt_progress_start(&prog, "loading", nsubj);
    int maxlabel = -1, labelled = 1;
    for (int i = 0; i < nsubj; i++) {
        if ((rc = dlt_subject_load(&subj[i]))) {
            dlt_error("%s", dlt_errmsg());
            dlt_subjects_free(subj, nsubj);
            return 1;
        }
        if (subj[i].label) {
            if (subj[i].maxlabel > maxlabel) maxlabel = subj[i].maxlabel;
        } else {
            labelled = 0;
        }
        if (isatty(2) && loglevel > 0) dlt_progress_update(&prog, i + 1, subj[i].id);
    }
    if (isatty(2) && loglevel > 0) dlt_progress_end(&prog, NULL);
    for (int i = 1; i < nsubj; i++)
        if (!subj[i].label != !subj[0].label) {
            dlt_error("%s has a label but %s has none: give every subject a label, or none", subj[i].label ? subj[i].id : subj[0].id,
                      subj[i].label ? subj[0].id : subj[i].id);
            dlt_subjects_free(subj, nsubj);
            return 1;
        }
    if (cfg.sampler != DLT_SAMPLER_RANDOM && !labelled) {
        dlt_error("the %s sampler needs label volumes (--label, or a label column)", dlt_sampler_name(cfg.sampler));
        dlt_subjects_free(subj, nsubj);
        return 1;
    }
    *out = subj, *nout = nsubj, *maxlabel_out = maxlabel, *labelled_out = labelled;
    return 0;
}

/* What the user should know about the subjects before the stream starts:
 * classes absent everywhere, subjects without foreground, preprocessing
 * that differs, the memory held. */
static void tell_about(const dlt_sampler *s, const dlt_subject *subj, int nsubj, const char *names)
{
    for (int i = 0; i < s->nmissing; i++) {
        char nb[128] = "";
        if (names) {
            const char *p = names;
            for (int k = 0; p && k < s->missing_classes[i]; k++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
            if (p) snprintf(nb, sizeof nb, " (%.*s)", (int)(strchr(p, ',') ? strchr(p, ',') - p : (long)strlen(p)), p);
        }
        dlt_warn("class %d%s is absent from every volume; balanced sampling draws only the classes present",
                 s->missing_classes[i], nb);
    }
    if (cfg.sampler == DLT_SAMPLER_FOREGROUND) {
        int nofg = 0;
        for (int i = 0; i < nsubj; i++) {
            int64_t fg = 0;
            for (int c = 1; c < cfg.nclasses; c++) fg += subj[i].count[c];
            if (!fg) nofg++;
        }
        if (nofg) dlt_warn("%d of %d subjects have no foreground voxels; their patches are all random", nofg, nsubj);
    }
    const char *pre = subj[0].preprocessing;
    for (int i = 1; i < nsubj; i++)
        if (strcmp(subj[i].preprocessing, pre)) {
            dlt_warn("subjects differ in preprocessing ('%s' in %s, '%s' in %s); the header records the first's", pre,
                     subj[0].id, subj[i].preprocessing, subj[i].id);
            break;
        }
    int64_t bi = 0, bl = 0, bx = 0;
    for (int i = 0; i < nsubj; i++) {
        int64_t a, b, c;
        dlt_subject_bytes(&subj[i], &a, &b, &c);
        bi += a, bl += b, bx += c;
    }
    int nvol = 0;
    for (int i = 0; i < nsubj; i++) nvol += subj[i].nvol + (subj[i].label != NULL);
    char m1[32], m2[32], m3[32], m4[32];
    dlt_log(1, "%d subject%s, %d volumes held in memory: %s (images %s, labels %s, class indices %s)", nsubj,
            nsubj == 1 ? "" : "s", nvol, mib(bi + bl + bx, m1), mib(bi, m2), mib(bl, m3), mib(bx, m4));

}

/* The stream header: shape, classes, sampling and augmentation settings. */
static void make_header(dlt_patch_header *h, const dlt_sampler *s, int labelled, const char *names, const char *pre,
                        const char *flipdesc)
{
    memset(h, 0, sizeof *h);
    char v[512];
    snprintf(v, sizeof v, "%lld", (long long)s->channels);
    dlt_patch_header_set(h, "channels", v);
    if (labelled || classes) {
        snprintf(v, sizeof v, "%d", cfg.nclasses);
        dlt_patch_header_set(h, "classes", v);
    }
    snprintf(v, sizeof v, "%d,%d,%d", cfg.patch[0], cfg.patch[1], cfg.patch[2]);
    dlt_patch_header_set(h, "patch", v);
    dlt_patch_header_set(h, "label", labelled ? "yes" : "no");
    if (names) dlt_patch_header_set(h, "class_names", names);
    if (*pre) dlt_patch_header_set(h, "preprocessing", pre);
    dlt_patch_header_set(h, "sampler", dlt_sampler_name(cfg.sampler));
    snprintf(v, sizeof v, "%lld", (long long)seed);
    dlt_patch_header_set(h, "seed", v);
    dlt_patch_header_set(h, "pad", dlt_pad_name(cfg.pad));
    snprintf(v, sizeof v, "%lld", (long long)per_volume);
    dlt_patch_header_set(h, "per_volume", v);
    dlt_patch_header_set(h, "shuffle", cfg.shuffle ? "yes" : "no");
    {
        int k = 0;
        v[0] = 0;
        if (*flipdesc) k += snprintf(v + k, sizeof v - (size_t)k, " flip=%s", flipdesc);
        if (cfg.aug.rot90) k += snprintf(v + k, sizeof v - (size_t)k, " rot90");
        if (cfg.aug.noise > 0) k += snprintf(v + k, sizeof v - (size_t)k, " noise=%g", cfg.aug.noise);
        if (cfg.aug.offset > 0) k += snprintf(v + k, sizeof v - (size_t)k, " offset=%g", cfg.aug.offset);
        if (cfg.aug.scale[0] != cfg.aug.scale[1] || (cfg.aug.scale[0] != 0 && cfg.aug.scale[0] != 1))
            k += snprintf(v + k, sizeof v - (size_t)k, " scale=%g,%g", cfg.aug.scale[0], cfg.aug.scale[1]);
        if (cfg.aug.gamma[0] != cfg.aug.gamma[1] || (cfg.aug.gamma[0] != 0 && cfg.aug.gamma[0] != 1))
            k += snprintf(v + k, sizeof v - (size_t)k, " gamma=%g,%g", cfg.aug.gamma[0], cfg.aug.gamma[1]);
        if (cfg.aug.elastic_alpha > 0)
            k += snprintf(v + k, sizeof v - (size_t)k, " elastic=%g,%g", cfg.aug.elastic_alpha, cfg.aug.elastic_sigma);
        if (cfg.aug.rotate_p > 0)
            k += snprintf(v + k, sizeof v - (size_t)k, " rotate=%g,%g", cfg.aug.rotate, cfg.aug.rotate_p);
        if (cfg.aug.sscale_p > 0)
            k += snprintf(v + k, sizeof v - (size_t)k, " spatial-scale=%g,%g,%g", cfg.aug.sscale[0], cfg.aug.sscale[1],
                          cfg.aug.sscale_p);
        if (cfg.aug.blur_p > 0)
            k += snprintf(v + k, sizeof v - (size_t)k, " blur=%g,%g,%g", cfg.aug.blur[0], cfg.aug.blur[1], cfg.aug.blur_p);
        if (cfg.aug.contrast_p > 0)
            k += snprintf(v + k, sizeof v - (size_t)k, " contrast=%g,%g,%g", cfg.aug.contrast[0], cfg.aug.contrast[1],
                          cfg.aug.contrast_p);
        if (cfg.aug.lowres_p > 0)
            k += snprintf(v + k, sizeof v - (size_t)k, " low-res=%g,%g,%g", cfg.aug.lowres[0], cfg.aug.lowres[1],
                          cfg.aug.lowres_p);
        dlt_patch_header_set(h, "augment", k ? v + 1 : "none");
    }
    if (cfg.sampler == DLT_SAMPLER_BALANCED && weights) dlt_patch_header_set(h, "class_weights", weights);
    if (cfg.sampler == DLT_SAMPLER_FOREGROUND) {
        snprintf(v, sizeof v, "%g", cfg.fg_fraction);
        dlt_patch_header_set(h, "fg_fraction", v);
    }
    dlt_patch_header_set(h, "source", list ? list : images[0]);

}

/* Records skip.. to the end (endless without --epochs/--count) to stdout,
 * made by T threads in batches of 2T, written in order; the sampler's
 * clones are freed here (ts[0] is *s). 0, or 1 (reported). */
static int write_records(dlt_sampler *s, int nsubj)
{
    int64_t per_epoch = (int64_t)nsubj * per_volume;
    int64_t end = -1; /* first record index not written; -1 = endless */
    if (epochs > 0) end = epochs * per_epoch;
    if (count >= 0 && (end < 0 || skip + count < end)) end = skip + count;
    int T = dlt_threads();
    if (T < 1) T = 1;
    if (T > 64) T = 64;
    int B = T == 1 ? 1 : 2 * T;
    dlt_sampler *ts = calloc((size_t)T, sizeof *ts);
    dlt_patch *batch = calloc((size_t)B, sizeof *batch);
    int *brc = calloc((size_t)B, sizeof(int));
    char (*bmsg)[512] = calloc((size_t)B, 512);
    if (!ts || !batch || !brc || !bmsg) {
        dlt_error("out of memory");
        return 1;
    }
    ts[0] = *s;
    for (int t = 1; t < T; t++) dlt_sampler_clone(&ts[t], s);
    int showprog = isatty(2) && loglevel > 0;
    dlt_progress prog;
    if (showprog) dlt_progress_start(&prog, "patches", end >= 0 ? end - skip : 0);
    int status = 0;
    for (int64_t k = skip; end < 0 || k < end; k += B) {
        int nb = end < 0 || end - k > B ? B : (int)(end - k);
#pragma omp parallel for num_threads(T) schedule(dynamic, 1) if (T > 1)
        for (int i = 0; i < nb; i++) {
#ifdef _OPENMP
            int t = omp_get_thread_num();
#else
            int t = 0;
#endif
            brc[i] = dlt_sampler_record(&ts[t], k + i, &batch[i]);
            if (brc[i]) snprintf(bmsg[i], 512, "%s", dlt_errmsg());
        }
        for (int i = 0; i < nb && !status; i++) {
            if (brc[i]) {
                dlt_error("record %lld: %s", (long long)(k + i), bmsg[i]);
                status = 1;
            } else if (dlt_patch_write(stdout, &batch[i])) {
                status = write_failed();
            }
        }
        if (status) break;
        if (showprog) dlt_progress_update(&prog, k + nb - skip, NULL);
    }
    if (!status && fflush(stdout) != 0) {
        if (errno == EPIPE) return 0;
        dlt_error("stdout: write failed: %s", strerror(errno));
        status = 1;
    }
    if (showprog) dlt_progress_end(&prog, NULL);
    if (!status && end >= 0) dlt_log(2, "wrote %lld records", (long long)(end > skip ? end - skip : 0));
    for (int i = 0; i < B; i++) dlt_patch_free(&batch[i]);
    for (int t = 0; t < T; t++) dlt_sampler_free(&ts[t]);
    free(ts), free(batch), free(brc), free(bmsg);
    return status;
}

int main(int argc, char **argv)
{
    dlt_log_init("dlt-sample");
    dlt_stdout_check_at_exit();
    signal(SIGPIPE, SIG_DFL); /* an early-exiting consumer ends us quietly */
    cfg.patch[0] = cfg.patch[1] = cfg.patch[2] = 64;
    cfg.fg_fraction = 0.33;
    loglevel = dlt_log_level();
    char flipdesc[8] = ""; /* e.g. "x,y,z" */
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    dlt_log_set_level(loglevel);
    if (first < argc) return dlt_usage_error("unexpected argument '%s'", argv[first]);
    if (!list == !nimages) return dlt_usage_error("%s", "give either --list FILE or --image FILE [--label FILE]");
    if (list && labelpath) return dlt_usage_error("%s", "--label goes with --image, not with --list");
    if (cfg.aug.rot90 && cfg.patch[0] != cfg.patch[1])
        return dlt_usage_error("--rot90 needs a patch with X == Y (%s)", "rotations are in the x-y plane");
    if (dlt_stdout_is_tty()) {
        dlt_error("refusing to write a binary patch stream to a terminal; redirect stdout or pipe it (e.g. | dlt-train)");
        return 2;
    }
    for (int a = 0; a < 3; a++)
        if (cfg.aug.flip[a]) {
            if (*flipdesc) strcat(flipdesc, ",");
            strcat(flipdesc, a == 0 ? "x" : a == 1 ? "y" : "z");
        }
    cfg.per_volume = (int)per_volume;
    cfg.seed = (uint64_t)seed;

    dlt_subject *subj = NULL;
    int nsubj = 0, maxlabel, labelled, rc;
    if (load_subjects(&subj, &nsubj, &maxlabel, &labelled)) return 1;
    cfg.nclasses = classes ? (int)classes : maxlabel >= 0 ? maxlabel + 1 : 1;
    double *w = NULL;
    if (weights) {
        w = calloc((size_t)cfg.nclasses, sizeof(double));
        int n = 0;
        if (!w || dlt_parse_doubles(weights, cfg.nclasses, w, &n) || n != cfg.nclasses) {
            dlt_error("--class-weights %s: want %d comma-separated weights, one per class", weights, cfg.nclasses);
            dlt_subjects_free(subj, nsubj);
            return 2;
        }
        cfg.class_weights = w;
    }
    char *names = NULL;
    if (namesfile && (rc = read_class_names(namesfile, cfg.nclasses, &names))) {
        dlt_error("%s", dlt_errmsg());
        dlt_subjects_free(subj, nsubj);
        return 1;
    }

    dlt_sampler s;
    if ((rc = dlt_sampler_init(&s, &cfg, subj, nsubj))) {
        dlt_error("%s", dlt_errmsg());
        dlt_subjects_free(subj, nsubj);
        return rc == DLT_EINVAL && strstr(dlt_errmsg(), "--rot90") ? 2 : 1;
    }
    tell_about(&s, subj, nsubj, names);
    dlt_patch_header h;
    make_header(&h, &s, labelled, names, subj[0].preprocessing, flipdesc);
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    if (dlt_patch_write_header(stdout, &h)) return write_failed();

    const int status = write_records(&s, nsubj);
    free(w);
    free(names);
    dlt_patch_header_free(&h);
    dlt_subjects_free(subj, nsubj);
    return status;
}
