/* net_io.c - a network and its weights to and from a model file
 * (dlt/model.h): tensors under the peer's state_dict names and shapes
 * (convolution weights 5-D, per-channel vectors 1-D, float32), the
 * configuration as metadata strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/io.h"
#include "net_int.h"

static void act_str(int act, float alpha, char *buf, size_t len)
{
    if (act == DLT_ACT_LEAKY)
        snprintf(buf, len, "leaky:%g", alpha);
    else
        snprintf(buf, len, "%s", dlt_net_act_name(act));
}

int dlt_net_save(dlt_net *net, dlt_model *m)
{
    const dlt_net_config *c = &net->cfg;
    char buf[256], a[32], b[32];
    int rc = 0;
#define META(k, ...) \
    if (!rc) { snprintf(buf, sizeof buf, __VA_ARGS__); rc = dlt_model_set_meta(m, k, buf); }
    META("net", "%s", dlt_net_kind_name(c->kind));
    META("in_channels", "%d", c->in_channels);
    META("classes", "%d", c->classes);
    if (!rc) dlt_net_format_filters(c, buf, sizeof buf), rc = dlt_model_set_meta(m, "filters", buf);
    if (!rc) dlt_net_format_strides(c, buf, sizeof buf), rc = dlt_model_set_meta(m, "strides", buf);
    META("res_units", "%d", c->res_units);
    act_str(c->act_enc, c->alpha, a, sizeof a);
    act_str(c->act_dec, c->alpha, b, sizeof b);
    META("activation", "%s,%s", a, b);
    META("norm", "%s", c->norm == DLT_NORM_INSTANCE ? "instance" : "batch");
    META("norm_momentum", "%.9g", c->norm_momentum);
    META("norm_eps", "%.9g", c->norm_eps);
    if (c->deep_sup) META("deep_supervision", "%d", c->deep_sup);
    META("dlt_version", "%s", DLT_VERSION);
#undef META
    if (rc) return rc;
    for (int i = 0; i < net->nparams; i++) {
        dlt_param *p = &net->params[i];
        int64_t n = dlt_tensor_numel(&p->value);
        float *h = dlt_alloc(n, 4, p->name);
        if (!h) return DLT_ENOMEM;
        int64_t shape[5] = {p->value.n, p->value.c, p->value.d, p->value.h, p->value.w};
        rc = dlt_tensor_download(&p->value, h);
        if (!rc) rc = dlt_model_add(m, p->name, DLT_DT_F32, p->role == DLT_T_VEC ? 1 : 5, shape, h);
        dlt_free(h);
        if (rc) return rc;
    }
    return 0;
}

static int meta_int(const dlt_model *m, const char *key, int lo, int hi, int *v)
{
    const char *s = dlt_model_get_meta(m, key);
    if (!s) return dlt_err(DLT_EFORMAT, "model: metadata key '%s' is missing", key);
    char *end;
    long x = strtol(s, &end, 10);
    if (*end || end == s || x < lo || x > hi)
        return dlt_err(DLT_EFORMAT, "model: metadata %s = '%s' is not an integer in %d..%d", key, s, lo, hi);
    *v = (int)x;
    return 0;
}

int dlt_net_config_from_model(const dlt_model *m, dlt_net_config *c)
{
    const char *s = dlt_model_get_meta(m, "net");
    if (!s) return dlt_err(DLT_EFORMAT, "model: metadata key 'net' is missing (not a dlt network file?)");
    int kind = dlt_net_kind_parse(s);
    if (kind < 0) return dlt_err(DLT_EFORMAT, "model: unknown network '%s'", s);
    int inc, cls, rc;
    if ((rc = meta_int(m, "in_channels", 1, 4096, &inc)) || (rc = meta_int(m, "classes", 2, 65535, &cls))) return rc;
    dlt_net_config_default(c, kind, inc, cls);
    if ((s = dlt_model_get_meta(m, "filters")) && (rc = dlt_net_parse_filters(c, s)))
        return dlt_err_prefix(DLT_EFORMAT, "model: metadata filters");
    if ((s = dlt_model_get_meta(m, "strides")) && (rc = dlt_net_parse_strides(c, s)))
        return dlt_err_prefix(DLT_EFORMAT, "model: metadata strides");
    if (dlt_model_get_meta(m, "res_units") && (rc = meta_int(m, "res_units", 1, 16, &c->res_units))) return rc;
    if ((s = dlt_model_get_meta(m, "activation"))) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", s);
        char *comma = strchr(buf, ',');
        if (comma) *comma = 0;
        if (dlt_net_act_parse(buf, &c->act_enc, &c->alpha) ||
            (comma && dlt_net_act_parse(comma + 1, &c->act_dec, &c->alpha)))
            return dlt_err_prefix(DLT_EFORMAT, "model: metadata activation");
    }
    if ((s = dlt_model_get_meta(m, "norm"))) {
        if (!strcmp(s, "batch")) c->norm = DLT_NORM_BATCH;
        else if (!strcmp(s, "instance")) c->norm = DLT_NORM_INSTANCE;
        else return dlt_err(DLT_EFORMAT, "model: metadata norm = '%s' (expected batch or instance)", s);
    }
    if ((s = dlt_model_get_meta(m, "norm_momentum"))) c->norm_momentum = strtof(s, NULL);
    if ((s = dlt_model_get_meta(m, "norm_eps"))) c->norm_eps = strtof(s, NULL);
    if (dlt_model_get_meta(m, "deep_supervision") &&
        (rc = meta_int(m, "deep_supervision", 0, DLT_NET_MAX_SCALES - 2, &c->deep_sup)))
        return rc;
    rc = dlt_net_config_check(c);
    return rc ? dlt_err_prefix(DLT_EFORMAT, "model") : 0;
}

int dlt_net_load_weights(dlt_net *net, const dlt_model *m)
{
    for (int i = 0; i < net->nparams; i++) {
        dlt_param *p = &net->params[i];
        const dlt_model_tensor *t = dlt_model_find(m, p->name);
        if (!t) {
            if (!p->trainable && !strcmp(strrchr(p->name, '.'), ".w")) continue; /* fixed upsampling: built in */
            return dlt_err(DLT_EFORMAT, "model: tensor %s is missing", p->name);
        }
        int64_t want[5] = {p->value.n, p->value.c, p->value.d, p->value.h, p->value.w};
        int nd = p->role == DLT_T_VEC ? 1 : 5, ok = t->ndim == nd;
        for (int a = 0; ok && a < nd; a++) ok = t->shape[a] == want[a];
        if (!ok) {
            char got[128] = "", exp[128] = "";
            for (int a = 0, o = 0; a < t->ndim && a < 8; a++) o += snprintf(got + o, sizeof got - o, "%s%lld", a ? "," : "", (long long)t->shape[a]);
            for (int a = 0, o = 0; a < nd; a++) o += snprintf(exp + o, sizeof exp - o, "%s%lld", a ? "," : "", (long long)want[a]);
            return dlt_err(DLT_ESHAPE, "model: tensor %s has shape [%s], the network needs [%s]", p->name, got, exp);
        }
        float *h = dlt_alloc(dlt_tensor_numel(&p->value), 4, p->name);
        if (!h) return DLT_ENOMEM;
        int rc = dlt_model_tensor_to_f32(t, h);
        if (!rc) rc = dlt_tensor_upload(&p->value, h);
        dlt_free(h);
        if (rc) return dlt_err_prefix(rc, "model: tensor %s", p->name);
    }
    return 0;
}

int dlt_net_load(const dlt_model *m, dlt_backend *be, dlt_net **out)
{
    dlt_net_config c;
    *out = NULL;
    int rc = dlt_net_config_from_model(m, &c);
    if (rc) return rc;
    dlt_net *net;
    if ((rc = dlt_net_create(&c, be, 0, &net))) return rc;
    if ((rc = dlt_net_load_weights(net, m))) {
        dlt_net_free(net);
        return rc;
    }
    *out = net;
    return 0;
}
