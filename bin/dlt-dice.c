/* dlt-dice - compare predicted and reference label volumes: per case and
 * class, Dice, precision, recall, volumes, HD95, ASSD and (--nsd) the
 * normalised surface Dice, as TSV on stdout,
 * with optional summary rows. The metrics are lib/metrics*.c; this file
 * reads the cases, collects rows and prints them once everything succeeded
 * (so a failure leaves stdout empty). */
#include "dlt/cli.h"
#include "dlt/core.h"
#include "dlt/io.h"
#include "dlt/listfile.h"
#include "dlt/metrics.h"
#include "dlt/model.h"
#include "dlt/volume.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* (options: the table above main) */

typedef struct {
    char *name, *pred, *ref;
    int line;
} pair;

/* --nsd: a tolerance for every class (dflt, NAN if none) and per label. */
typedef struct {
    double dflt;
    int n, label[256];
    double mm[256];
} nsd_spec;

static double nsd_tol_of(const nsd_spec *ns, int label)
{
    for (int i = 0; i < ns->n; i++)
        if (ns->label[i] == label) return ns->mm[i];
    return ns->dflt;
}

/* "MM" or "LABEL=MM" items, comma-separated; 0 or -1 (bad, message set). */
static int nsd_parse(const char *arg, nsd_spec *ns)
{
    ns->dflt = NAN, ns->n = 0;
    const char *p = arg;
    while (1) {
        char *e;
        long l = -1;
        const char *eq = strchr(p, '='), *comma = strchr(p, ',');
        if (eq && (!comma || eq < comma)) {
            l = strtol(p, &e, 10);
            if (e != eq || e == p || l < 0 || l > 65535) goto bad;
            p = eq + 1;
        }
        double mm = strtod(p, &e);
        if (e == p || !(mm > 0) || !isfinite(mm) || (*e && *e != ',')) goto bad;
        if (l < 0) {
            if (!isnan(ns->dflt)) goto bad;
            ns->dflt = mm;
        } else {
            if (ns->n == 256) goto bad;
            ns->label[ns->n] = (int)l, ns->mm[ns->n++] = mm;
        }
        if (!*e) return 0;
        p = e + 1;
    }
bad:
    return dlt_err(DLT_EINVAL, "--nsd: '%s' is not MM or a comma list of MM and LABEL=MM (mm > 0)", arg);
}

typedef struct {
    int nl;                 /* classes computed: labels 0..nl-1 indexed by label */
    dlt_class_metrics *m;   /* [nl], m[l] for label l (NULL entries unused) */
    int *have;              /* [nl] 1 where computed */
} case_result;

static char *case_name(const char *path)
{
    if (strcmp(path, "-") == 0) return strdup("stdin");
    const char *b = strrchr(path, '/');
    char *s = strdup(b ? b + 1 : path);
    size_t n = strlen(s);
    if (n > 7 && strcmp(s + n - 7, ".nii.gz") == 0) s[n - 7] = 0;
    else if (n > 4 && strcmp(s + n - 4, ".nii") == 0) s[n - 4] = 0;
    return s;
}

/* Read the list (case, pred, ref; an optional header row names them); every
 * path is checked now, so a bad line fails before any case is computed. */
static int read_list(const char *path, pair **out, int *np)
{
    static const char *const names[] = {"case", "pred", "ref", "prediction", "reference", NULL};
    dlt_listfile l;
    *out = NULL;
    *np = 0;
    int rc = dlt_listfile_read(path, names, &l);
    if (rc) return rc;
    if (l.ncols != 3) {
        rc = dlt_err(DLT_EFORMAT, "%s: expected 3 tab-separated columns (case, pred, ref), got %d",
                     dlt_listfile_where(&l, 0), l.ncols);
        dlt_listfile_free(&l);
        return rc;
    }
    pair *v = calloc((size_t)l.nrows, sizeof *v);
    if (!v) rc = dlt_err(DLT_ENOMEM, "out of memory");
    for (int r = 0; !rc && r < l.nrows; r++) {
        v[r].name = strdup(l.cell[r][0]);
        v[r].line = l.line[r];
        *np = r + 1;
        if ((rc = dlt_listfile_path(&l, r, 1, 1, &v[r].pred)) == 0) rc = dlt_listfile_path(&l, r, 2, 1, &v[r].ref);
    }
    dlt_listfile_free(&l);
    *out = v;
    return rc;
}

static int run_case(const pair *p, const char *where, double tol, int distances, const nsd_spec *ns,
                    const int *want, int nwant, case_result *cr)
{
    dlt_volume a, b;
    int rc = dlt_volume_read_label(p->pred, &a);
    if (rc) return dlt_err_prefix(rc, "%s", where);
    if ((rc = dlt_volume_read_label(p->ref, &b)) != 0) {
        dlt_volume_free(&a);
        return dlt_err_prefix(rc, "%s", where);
    }
    int64_t nv = b.nx * b.ny * b.nz;
    if ((rc = dlt_volume_same_grid(&a, &b, tol)) != 0) {
        dlt_err_prefix(rc, "%s: %s and %s are not on the same grid", where, strcmp(p->pred, "-") ? p->pred : "stdin",
                       strcmp(p->ref, "-") ? p->ref : "stdin");
        goto out;
    }
    int lmax = 0;
    int *labels;
    int nl;
    if (want) {
        labels = (int *)want;
        nl = nwant;
        for (int i = 0; i < nl; i++) lmax = want[i] > lmax ? want[i] : lmax;
    } else {
        int x = dlt_label_max(a.label, nv), y = dlt_label_max(b.label, nv);
        lmax = x > y ? x : y;
        nl = lmax;
        labels = malloc(sizeof(int) * (size_t)(nl ? nl : 1));
        for (int i = 0; i < nl; i++) labels[i] = i + 1;
    }
    dlt_class_metrics *m = calloc((size_t)(nl ? nl : 1), sizeof *m);
    cr->nl = lmax + 1;
    cr->m = calloc((size_t)cr->nl, sizeof *cr->m);
    cr->have = calloc((size_t)cr->nl, sizeof(int));
    int64_t n3[3] = {b.nx, b.ny, b.nz};
    double t0 = dlt_now();
    double *nsd_tol = NULL;
    if (ns) {
        nsd_tol = malloc(sizeof(double) * (size_t)(nl ? nl : 1));
        for (int i = 0; i < nl; i++) {
            double t = nsd_tol_of(ns, labels[i]);
            nsd_tol[i] = isnan(t) ? 0 : t;
        }
    }
    rc = dlt_metrics_compute(a.label, b.label, n3, b.spacing, labels, nl, distances, nsd_tol, m);
    free(nsd_tol);
    if (rc) dlt_err_prefix(rc, "%s", where);
    for (int i = 0; !rc && i < nl; i++) {
        cr->m[labels[i]] = m[i];
        cr->have[labels[i]] = 1;
    }
    dlt_log(DLT_LOG_VERBOSE, "%s: %lldx%lldx%lld, %d classes, %.2f s", p->name, (long long)b.nx, (long long)b.ny,
            (long long)b.nz, nl, dlt_now() - t0);
    free(m);
    if (labels != want) free(labels);
out:
    dlt_volume_free(&a);
    dlt_volume_free(&b);
    return rc;
}

static void put(FILE *f, double x, const char *fmt)
{
    if (isnan(x)) fputs("\t-", f);
    else if (isinf(x)) fputs(x > 0 ? "\tinf" : "\t-inf", f);
    else {
        fputc('\t', f);
        fprintf(f, fmt, x);
    }
}

/* The numbers of a class: dice..assd, and nsd with --nsd (NV of them). */
enum { NV_MAX = 8 };

/* One row: the nv numbers of a class. */
static void row(FILE *f, const char *cs, const char *cls, const char *name, const double *v, int nv)
{
    fprintf(f, "%s\t%s\t%s", cs, cls, name);
    for (int i = 0; i < nv; i++) put(f, v[i], i < 3 || i == 7 ? "%.6f" : "%.6g");
    fputc('\n', f);
}

static void values(const dlt_class_metrics *m, double v[NV_MAX])
{
    v[0] = m->dice, v[1] = m->precision, v[2] = m->recall;
    v[3] = m->absent ? NAN : m->vol_pred_ml, v[4] = m->absent ? NAN : m->vol_ref_ml;
    v[5] = m->hd95, v[6] = m->assd, v[7] = m->nsd;
}

/* The metrics of class cls in case r, all NAN where it was not computed. */
static dlt_class_metrics class_of(const case_result *r, int cls, int distances)
{
    dlt_class_metrics m;
    if (cls < r->nl && r->have[cls]) m = r->m[cls];
    else {
        memset(&m, 0, sizeof m);
        m.absent = 1;
        m.dice = m.precision = m.recall = m.hd95 = m.assd = m.nsd = NAN;
    }
    if (!distances) m.hd95 = m.assd = m.nsd = NAN;
    return m;
}

static const char *list, *classes, *model, *labels_arg, *casearg;
static int summary, distances = 1, verbosity;
static double tol = 1e-3;
static nsd_spec nsd, *ns;

static int opt_nsd(const dlt_option *o, const char *arg)
{
    if (nsd_parse(arg, &nsd)) return DLT_EINVAL;
    ns = &nsd;
    return 0;
}

static dlt_option opts[] = {
    DLT_OPT_STR('l', "list", &list, "FILE", "many cases from a list"),
    DLT_OPT_STR('c', "classes", &classes, "FILE", "class names, TSV 'id<TAB>name'; its ids are the classes"),
    DLT_OPT_STR('m', "model", &model, "FILE", "class names from a model file (class_names)"),
    DLT_OPT_STR(0, "labels", &labels_arg, "LIST", "report only these classes, e.g. 1,2,5 (0 allowed)"),
    DLT_OPT_FLAG('s', "summary", &summary, 1,
                 "add mean, std, median, min, max per class over cases,\nand the mean over foreground classes"),
    DLT_OPT_FLAG(0, "no-distances", &distances, 0, "skip HD95 and ASSD (columns '-')"),
    DLT_OPT_CALL(0, "nsd", opt_nsd, "SPEC",
                 "add a column nsd: normalised surface Dice at a tolerance\nin mm, e.g. 2 (every class) or 2,3=1.5,7=1 "
                 "(class 3\nat 1.5 mm, 7 at 1 mm, the others at 2) or 1=1,2=1\n(only those classes)"),
    DLT_OPT_STR(0, "case", &casearg, "NAME", "case name for PRED REF (default: PRED's file name)"),
    DLT_OPT_DBL(0, "tolerance", &tol, "MM", 0, HUGE_VAL, 0, "grid tolerance for dims/affine checks (default 0.001)"),
    DLT_OPT_COMMON(&verbosity),
    DLT_OPT_END,
};

static const dlt_cli cli = {
    "dlt-dice", "[OPTIONS] PRED REF\n       dlt-dice [OPTIONS] --list PAIRS.tsv",
    "Per-class Dice, precision, recall, volumes (ml), HD95 and ASSD (mm) of\n"
    "predicted against reference label volumes, as TSV on stdout. PRED or REF\n"
    "may be - (stdin). PAIRS.tsv: columns case, pred, ref (a header row;\n"
    "relative paths are relative to the list file).",
    opts,
    "Classes absent from both volumes of a case print '-' and are left out of\n"
    "the summary; an empty prediction (or reference) gives Dice 0 and 'inf' mm.\n"
    "See dlt-dice(1).",
    NULL};

/* Class names from --classes (whose foreground ids become the classes
 * reported unless --labels gave them) or from --model. 0 or an error. */
static int read_names(dlt_class_names *names, int *want, int *nwant, int **wantp)
{
    int rc = 0;
    if (classes) {
        if ((rc = dlt_class_names_read(classes, names)) != 0) return rc;
        if (!*wantp) {
            for (int i = 0; i < names->n && *nwant < 1024; i++)
                if (names->id[i] > 0) want[(*nwant)++] = names->id[i];
            if (*nwant == 0) return dlt_err(DLT_EFORMAT, "%s: names no foreground class (ids > 0)", classes);
            *wantp = want;
        }
    } else if (model) {
        dlt_model mod;
        dlt_model_init(&mod);
        if ((rc = dlt_model_read(model, &mod)) != 0) return rc;
        const char *cn = dlt_model_get_meta(&mod, "class_names");
        if (cn) rc = dlt_class_names_parse(cn, names);
        else dlt_warn("%s: no class_names in the model metadata", model);
        dlt_model_free(&mod);
        if (rc) return dlt_err_prefix(rc, "%s", model);
    }
    return rc;
}

/* The TSV: a row per case and class, then with --summary the statistics
 * per class over the cases and the mean over foreground classes. */
static void write_table(FILE *o, const pair *pairs, const case_result *res, int np, const int *cls, int ncls,
                        const dlt_class_names *names, const int NV)
{
    fprintf(o, "case\tclass\tname\tdice\tprecision\trecall\tvol_pred_ml\tvol_ref_ml\thd95\tassd%s\n",
            ns ? "\tnsd" : "");
    double *col = malloc(sizeof(double) * (size_t)(np ? np : 1) * NV);
    double *fg = malloc(sizeof(double) * (size_t)(ncls ? ncls : 1) * NV);
    int nfg = 0;
    dlt_stats *st = malloc(sizeof(dlt_stats) * NV * (size_t)(ncls ? ncls : 1));
    for (int i = 0; i < np; i++)
        for (int k = 0; k < ncls; k++) {
            char id[16];
            snprintf(id, sizeof id, "%d", cls[k]);
            const char *nm = dlt_class_names_get(names, cls[k]);
            dlt_class_metrics m = class_of(&res[i], cls[k], distances);
            double v[NV_MAX];
            values(&m, v);
            row(o, pairs[i].name, id, nm ? nm : "-", v, NV);
        }
    if (summary) {
        static const char *sname[5] = {"mean", "std", "median", "min", "max"};
        for (int k = 0; k < ncls; k++) {
            for (int i = 0; i < np; i++) {
                dlt_class_metrics m = class_of(&res[i], cls[k], distances);
                double v[NV_MAX];
                values(&m, v);
                for (int j = 0; j < NV; j++) col[j * np + i] = v[j];
            }
            for (int j = 0; j < NV; j++) dlt_stats_compute(col + j * np, np, &st[k * NV + j]);
        }
        for (int s = 0; s < 5; s++)
            for (int k = 0; k < ncls; k++) {
                char id[16];
                snprintf(id, sizeof id, "%d", cls[k]);
                const char *nm = dlt_class_names_get(names, cls[k]);
                double v[NV_MAX];
                for (int j = 0; j < NV; j++) {
                    const dlt_stats *t = &st[k * NV + j];
                    v[j] = s == 0 ? t->mean : s == 1 ? t->std : s == 2 ? t->median : s == 3 ? t->min : t->max;
                }
                row(o, sname[s], id, nm ? nm : "-", v, NV);
            }
        /* Mean over foreground classes of the per-class means (classes
         * absent from every case, and class 0, left out). */
        for (int k = 0; k < ncls; k++)
            if (cls[k] > 0 && st[k * NV].n > 0) {
                for (int j = 0; j < NV; j++) fg[j * ncls + nfg] = st[k * NV + j].mean;
                nfg++;
            }
        double v[NV_MAX];
        for (int j = 0; j < NV; j++) {
            dlt_stats t;
            dlt_stats_compute(fg + j * ncls, nfg, &t);
            v[j] = t.mean;
        }
        row(o, "mean", "fg", "foreground", v, NV);
    }
    free(col);
    free(fg);
    free(st);
}

int main(int argc, char **argv)
{
    dlt_log_init("dlt-dice");
    dlt_stdout_check_at_exit();
    verbosity = dlt_log_level();
    const int first = dlt_cli_parse(&cli, argc, argv);
    if (first < 0) return first == DLT_CLI_EXIT_OK ? 0 : 2;
    dlt_log_set_level(verbosity);
    if (ns && !distances) {
        dlt_error("--nsd and --no-distances exclude each other");
        return 2;
    }
    const int NV = ns ? 8 : 7;
    int nops = argc - first;
    if (list ? nops != 0 : nops != 2) {
        dlt_error(list ? "--list takes no PRED REF operands" : "expected PRED and REF (or --list FILE); see --help");
        return 2;
    }
    if (!list && strcmp(argv[first], "-") == 0 && strcmp(argv[first + 1], "-") == 0) {
        dlt_error("PRED and REF cannot both be stdin");
        return 2;
    }
    int want[1024], nwant = 0, *wantp = NULL;
    if (labels_arg) {
        if (dlt_parse_ints(labels_arg, 1024, want, &nwant) != 0 || nwant == 0) {
            dlt_error("--labels: '%s' is not a comma list of class ids", labels_arg);
            return 2;
        }
        for (int i = 0; i < nwant; i++)
            if (want[i] < 0 || want[i] > 65535) {
                dlt_error("--labels: %d is not a class id (0..65535)", want[i]);
                return 2;
            }
        wantp = want;
    }

    dlt_class_names names;
    memset(&names, 0, sizeof names);
    int rc = 0;
    if ((rc = read_names(&names, want, &nwant, &wantp))) goto fail;

    pair *pairs = NULL;
    int np = 0;
    if (list) {
        if ((rc = read_list(list, &pairs, &np)) != 0) goto fail;
    } else {
        pairs = calloc(1, sizeof *pairs);
        pairs[0].name = casearg ? strdup(casearg) : case_name(argv[first]);
        pairs[0].pred = strdup(argv[first]);
        pairs[0].ref = strdup(argv[first + 1]);
        np = 1;
    }
    case_result *res = calloc((size_t)np, sizeof *res);
    dlt_progress prog;
    if (np > 1) dlt_progress_start(&prog, "cases", np);
    int gmax = 0;
    for (int i = 0; i < np && !rc; i++) {
        char where[600];
        if (list) snprintf(where, sizeof where, "%s:%d (case %s)", list, pairs[i].line, pairs[i].name);
        else snprintf(where, sizeof where, "case %s", pairs[i].name);
        rc = run_case(&pairs[i], where, tol, distances, ns, wantp, nwant, &res[i]);
        if (!rc && res[i].nl - 1 > gmax) gmax = res[i].nl - 1;
        if (np > 1) dlt_progress_update(&prog, i + 1, NULL);
    }
    if (np > 1 && !rc) dlt_progress_end(&prog, NULL);

    if (!rc) {
        /* The classes reported: --labels / --classes, else 1..max over all cases. */
        int ncls = wantp ? nwant : gmax;
        int *cls = malloc(sizeof(int) * (size_t)(ncls ? ncls : 1));
        for (int k = 0; k < ncls; k++) cls[k] = wantp ? wantp[k] : k + 1;
        FILE *o = stdout;
        write_table(o, pairs, res, np, cls, ncls, &names, NV);
        free(cls);
        if (fflush(o) != 0 || ferror(o)) rc = dlt_err(DLT_EIO, "stdout: write failed: %s", strerror(errno));
    }
    for (int i = 0; i < np; i++) {
        free(pairs[i].name);
        free(pairs[i].pred);
        free(pairs[i].ref);
        free(res[i].m);
        free(res[i].have);
    }
    free(pairs);
    free(res);
fail:
    dlt_class_names_free(&names);
    if (rc) {
        dlt_error("%s", dlt_errmsg());
        return 1;
    }
    return 0;
}
