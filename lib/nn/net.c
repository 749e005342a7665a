/* net.c - DLTK's networks as node graphs (see dlt/net.h): configuration,
 * parsing and formatting of its options, the graph builders that mirror
 * ../shared/peers/torch_dltk_unet.py layer by layer (same parameter names and
 * order), and weight initialisation. Running the graph is net_exec.c; model
 * files are net_io.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlt/io.h"
#include "net_int.h"

void dlt_net_config_default(dlt_net_config *c, int kind, int in_channels, int classes)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->in_channels = in_channels;
    c->classes = classes;
    c->nscales = 4;
    const int f[4] = {16, 32, 64, 128};
    for (int s = 0; s < 4; s++) {
        c->filters[s] = f[s];
        for (int a = 0; a < 3; a++) c->strides[s][a] = s == 0 ? 1 : 2;
    }
    c->res_units = 1;
    /* DLTK: residual_unet_3d passes leaky_relu to the encoder only (decoder
     * units keep vanilla_residual_unit_3d's relu6); residual_fcn_3d uses relu6 */
    c->act_enc = kind == DLT_NET_FCN ? DLT_ACT_RELU6 : DLT_ACT_LEAKY;
    c->act_dec = DLT_ACT_RELU6;
    c->alpha = 0.1f;
    c->norm = DLT_NORM_BATCH;
    c->norm_momentum = 0.99f;
    c->norm_eps = 1e-3f;
}

int dlt_net_config_check(const dlt_net_config *c)
{
    if (!dlt_net_kind_name(c->kind)) return dlt_err(DLT_EINVAL, "net: unknown network kind %d", c->kind);
    if (c->in_channels < 1 || c->in_channels > 4096)
        return dlt_err(DLT_EINVAL, "net: input channels %d out of range 1..4096", c->in_channels);
    if (c->classes < 2 || c->classes > 65535)
        return dlt_err(DLT_EINVAL, "net: classes %d out of range 2..65535", c->classes);
    if (c->nscales < 2 || c->nscales > DLT_NET_MAX_SCALES)
        return dlt_err(DLT_EINVAL, "net: %d scales (filters) given; need 2..%d", c->nscales, DLT_NET_MAX_SCALES);
    for (int s = 0; s < c->nscales; s++) {
        if (c->filters[s] < 1 || c->filters[s] > 65536)
            return dlt_err(DLT_EINVAL, "net: filters[%d] = %d out of range", s, c->filters[s]);
        for (int a = 0; a < 3; a++)
            if (c->strides[s][a] < 1 || c->strides[s][a] > 8)
                return dlt_err(DLT_EINVAL, "net: strides of scale %d out of range 1..8", s);
    }
    if (c->strides[0][0] != 1 || c->strides[0][1] != 1 || c->strides[0][2] != 1)
        return dlt_err(DLT_EUNSUP, "net: the first scale's stride must be 1 (the output would be smaller than the input)");
    if (c->res_units < 1 || c->res_units > 16) return dlt_err(DLT_EINVAL, "net: res_units %d out of range 1..16", c->res_units);
    if (!dlt_net_act_name(c->act_enc) || !dlt_net_act_name(c->act_dec))
        return dlt_err(DLT_EINVAL, "net: unknown activation");
    if (c->norm != DLT_NORM_BATCH && c->norm != DLT_NORM_INSTANCE) return dlt_err(DLT_EINVAL, "net: unknown norm %d", c->norm);
    if (!(c->norm_eps > 0) || !(c->norm_momentum >= 0 && c->norm_momentum < 1))
        return dlt_err(DLT_EINVAL, "net: norm eps must be > 0 and momentum in [0,1)");
    if (c->deep_sup && c->kind == DLT_NET_FCN)
        return dlt_err(DLT_EUNSUP, "net: deep supervision needs a U-Net (the FCN's decoder has no per-scale features)");
    if (c->deep_sup < 0 || c->deep_sup > c->nscales - 2)
        return dlt_err(DLT_EINVAL, "net: deep supervision %d out of range 0..%d (the decoder scales below full "
                       "resolution of a %d-scale network)", c->deep_sup, c->nscales - 2, c->nscales);
    return 0;
}

int dlt_net_kind_parse(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "unet")) return DLT_NET_UNET;
    if (!strcmp(s, "asym-unet")) return DLT_NET_ASYM_UNET;
    if (!strcmp(s, "fcn")) return DLT_NET_FCN;
    return -1;
}

const char *dlt_net_kind_name(int kind)
{
    switch (kind) {
    case DLT_NET_UNET: return "unet";
    case DLT_NET_ASYM_UNET: return "asym-unet";
    case DLT_NET_FCN: return "fcn";
    default: return NULL;
    }
}

int dlt_net_act_parse(const char *s, int *act, float *alpha)
{
    static const struct { const char *n; int a; } tab[] = {
        {"none", DLT_ACT_NONE}, {"relu", DLT_ACT_RELU}, {"leaky", DLT_ACT_LEAKY}, {"relu6", DLT_ACT_RELU6},
        {"prelu", DLT_ACT_PRELU}};
    if (!s) return dlt_err(DLT_EINVAL, "activation: missing");
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].n) == len && !strncmp(s, tab[i].n, len)) {
            float a = 0.1f;
            if (colon) {
                char *end;
                double v = strtod(colon + 1, &end);
                if (tab[i].a != DLT_ACT_LEAKY || *end || end == colon + 1 || !(v >= 0 && v < 1))
                    return dlt_err(DLT_EINVAL, "%s: bad activation (a slope goes with leaky only, e.g. leaky:0.2)", s);
                a = (float)v;
            }
            *act = tab[i].a;
            if (alpha && tab[i].a == DLT_ACT_LEAKY) *alpha = a;
            return 0;
        }
    return dlt_err(DLT_EINVAL, "%s: unknown activation (expected none, relu, leaky[:slope], relu6 or prelu)", s);
}

const char *dlt_net_act_name(int act)
{
    switch (act) {
    case DLT_ACT_NONE: return "none";
    case DLT_ACT_RELU: return "relu";
    case DLT_ACT_LEAKY: return "leaky";
    case DLT_ACT_RELU6: return "relu6";
    case DLT_ACT_PRELU: return "prelu";
    default: return NULL;
    }
}

int dlt_net_parse_filters(dlt_net_config *c, const char *s)
{
    int v[DLT_NET_MAX_SCALES], n = 0;
    if (dlt_parse_ints(s, DLT_NET_MAX_SCALES, v, &n)) return dlt_err_prefix(DLT_EINVAL, "filters");
    if (n < 2) return dlt_err(DLT_EINVAL, "filters %s: need at least 2 scales", s);
    for (int i = 0; i < n; i++) {
        if (v[i] < 1 || v[i] > 65536) return dlt_err(DLT_EINVAL, "filters %s: %d out of range 1..65536", s, v[i]);
        c->filters[i] = v[i];
    }
    c->nscales = n;
    return 0;
}

int dlt_net_parse_strides(dlt_net_config *c, const char *s)
{
    int st[DLT_NET_MAX_SCALES][3], n = 0;
    if (strchr(s, 'x')) {
        char buf[256];
        if (strlen(s) >= sizeof buf) return dlt_err(DLT_EINVAL, "strides: too long");
        strcpy(buf, s);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (n == DLT_NET_MAX_SCALES) return dlt_err(DLT_EINVAL, "strides %s: more than %d scales", s, n);
            if (dlt_parse_int3(tok, 1, 8, st[n])) return dlt_err_prefix(DLT_EINVAL, "strides %s", s);
            n++;
        }
    } else {
        int v[DLT_NET_MAX_SCALES];
        if (dlt_parse_ints(s, DLT_NET_MAX_SCALES, v, &n)) return dlt_err_prefix(DLT_EINVAL, "strides");
        for (int i = 0; i < n; i++) {
            if (v[i] < 1 || v[i] > 8) return dlt_err(DLT_EINVAL, "strides %s: %d out of range 1..8", s, v[i]);
            st[i][0] = st[i][1] = st[i][2] = v[i];
        }
    }
    if (n != c->nscales)
        return dlt_err(DLT_EINVAL, "strides %s: %d scales, but the filters give %d", s, n, c->nscales);
    memcpy(c->strides, st, sizeof(int) * 3 * (size_t)n);
    return 0;
}

void dlt_net_format_filters(const dlt_net_config *c, char *buf, int len)
{
    int o = 0;
    buf[0] = 0;
    for (int s = 0; s < c->nscales && o < len; s++) o += snprintf(buf + o, (size_t)(len - o), "%s%d", s ? "," : "", c->filters[s]);
}

void dlt_net_format_strides(const dlt_net_config *c, char *buf, int len)
{
    int iso = 1, o = 0;
    for (int s = 0; s < c->nscales; s++) iso &= c->strides[s][0] == c->strides[s][1] && c->strides[s][1] == c->strides[s][2];
    buf[0] = 0;
    for (int s = 0; s < c->nscales && o < len; s++) {
        if (iso)
            o += snprintf(buf + o, (size_t)(len - o), "%s%d", s ? "," : "", c->strides[s][0]);
        else
            o += snprintf(buf + o, (size_t)(len - o), "%s%dx%dx%d", s ? "," : "", c->strides[s][0], c->strides[s][1],
                          c->strides[s][2]);
    }
}

void dlt_net_size_multiple(const dlt_net_config *c, int64_t m[3])
{
    m[0] = m[1] = m[2] = 1;
    for (int s = 0; s < c->nscales; s++)
        for (int a = 0; a < 3; a++) m[a] *= c->strides[s][a];
}

int dlt_net_check_size(const dlt_net_config *c, int64_t x, int64_t y, int64_t z)
{
    int64_t m[3], v[3] = {x, y, z};
    const char *ax = "xyz";
    dlt_net_size_multiple(c, m);
    for (int a = 0; a < 3; a++)
        if (v[a] < 1 || v[a] % m[a]) {
            int64_t lo = v[a] / m[a] * m[a], hi = lo + m[a];
            return dlt_err(DLT_ESHAPE,
                           "input %lldx%lldx%lld (X,Y,Z): %c size %lld is not a multiple of %lld (the product of the "
                           "%c strides); use %lld or %lld",
                           (long long)x, (long long)y, (long long)z, ax[a], (long long)v[a], (long long)m[a], ax[a],
                           (long long)(lo > 0 ? lo : hi), (long long)hi);
        }
    return 0;
}

/* ------------------------------------------------------------------ graph building */

int dlt__net_add_param(dlt_net *net, const char *name, int trainable, int role, int64_t n, int64_t c, int64_t d,
                       int64_t h, int64_t w)
{
    if (net->nparams == net->cap_params) {
        int cap = net->cap_params ? 2 * net->cap_params : 64;
        dlt_param *p = realloc(net->params, sizeof *p * (size_t)cap);
        if (!p) return dlt_err(DLT_ENOMEM, "net: out of memory");
        net->params = p, net->cap_params = cap;
    }
    dlt_param *p = &net->params[net->nparams];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->trainable = trainable;
    p->role = role;
    int rc = dlt_tensor_alloc(net->be, &p->value, role, n, c, d, h, w);
    if (rc) return dlt_err_prefix(rc, "%s", name);
    net->nparams++;
    return net->nparams - 1;
}

typedef struct builder {
    dlt_net *net;
    int err;
} builder;

static int add_value(builder *b, int c)
{
    dlt_net *net = b->net;
    if (net->nvalues == net->cap_values) {
        int cap = net->cap_values ? 2 * net->cap_values : 64;
        net_value *v = realloc(net->values, sizeof *v * (size_t)cap);
        if (!v) return b->err = dlt_err(DLT_ENOMEM, "net: out of memory"), 0;
        net->values = v, net->cap_values = cap;
    }
    memset(&net->values[net->nvalues], 0, sizeof(net_value));
    net->values[net->nvalues].c = c;
    return net->nvalues++;
}

static net_node *add_node(builder *b, int op, int in0, int in1, int cout)
{
    dlt_net *net = b->net;
    if (b->err) return NULL;
    if (net->nnodes == net->cap_nodes) {
        int cap = net->cap_nodes ? 2 * net->cap_nodes : 64;
        net_node *v = realloc(net->nodes, sizeof *v * (size_t)cap);
        if (!v) return b->err = dlt_err(DLT_ENOMEM, "net: out of memory"), NULL;
        net->nodes = v, net->cap_nodes = cap;
    }
    net_node *nd = &net->nodes[net->nnodes];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->in[0] = in0, nd->in[1] = in1;
    nd->w = nd->gamma = nd->beta = nd->rm = nd->rv = -1;
    nd->out = add_value(b, cout);
    if (b->err) return NULL;
    net->nnodes++;
    return nd;
}

static int param(builder *b, const char *prefix, const char *leaf, int trainable, int role, int64_t n, int64_t c,
                 int64_t d, int64_t h, int64_t w)
{
    if (b->err) return -1;
    char name[96];
    snprintf(name, sizeof name, "%.80s.%.12s", prefix, leaf);
    int i = dlt__net_add_param(b->net, name, trainable, role, n, c, d, h, w);
    if (i < 0) b->err = i;
    return i;
}

/* Convolution without bias, TF 'same'; k and s in D,H,W. */
static int conv(builder *b, int x, int cout, const int k[3], const int s[3], const char *name)
{
    int cin = b->net->values[x].c;
    int w = param(b, name, "weight", 1, DLT_T_WEIGHT, cout, cin, k[0], k[1], k[2]);
    net_node *nd = add_node(b, NODE_CONV, x, -1, cout);
    if (!nd) return 0;
    for (int a = 0; a < 3; a++) nd->cd.k[a] = k[a], nd->cd.stride[a] = s[a];
    nd->cd.groups = 1;
    nd->w = w;
    return nd->out;
}

static int norm_act(builder *b, int x, int act, const char *name)
{
    const dlt_net_config *c = &b->net->cfg;
    int ch = b->net->values[x].c;
    int gamma = param(b, name, "weight", 1, DLT_T_VEC, ch, 1, 1, 1, 1);
    int beta = param(b, name, "bias", 1, DLT_T_VEC, ch, 1, 1, 1, 1);
    int rm = -1, rv = -1;
    if (c->norm == DLT_NORM_BATCH) {
        rm = param(b, name, "running_mean", 0, DLT_T_VEC, ch, 1, 1, 1, 1);
        rv = param(b, name, "running_var", 0, DLT_T_VEC, ch, 1, 1, 1, 1);
    }
    net_node *nd = add_node(b, NODE_NORM, x, -1, ch);
    if (!nd) return 0;
    nd->gamma = gamma, nd->beta = beta, nd->rm = rm, nd->rv = rv;
    nd->nd.kind = c->norm;
    nd->nd.eps = c->norm_eps;
    nd->nd.momentum = c->norm_momentum;
    nd->nd.affine = 1;
    nd->nd.act = act == DLT_ACT_PRELU ? DLT_ACT_NONE : act;
    nd->nd.alpha = c->alpha;
    if (act != DLT_ACT_PRELU) return nd->out;
    /* PReLU cannot be fused into the norm: a separate node with trained slopes. */
    char pname[128];
    snprintf(pname, sizeof pname, "%.80s_prelu", name);
    int sl = param(b, pname, "weight", 1, DLT_T_VEC, ch, 1, 1, 1, 1);
    int y = nd->out;
    net_node *an = add_node(b, NODE_ACT, y, -1, ch);
    if (!an) return 0;
    an->act = DLT_ACT_PRELU;
    an->w = sl;
    return an->out;
}

/* DLTK vanilla_residual_unit_3d (pre-activation); s in D,H,W. */
static int res_unit(builder *b, int x, int cout, const int s[3], int act, const char *prefix)
{
    char name[96];
    int cin = b->net->values[x].c, k0[3], k3[3] = {3, 3, 3}, one[3] = {1, 1, 1}, strided = 0;
    for (int a = 0; a < 3; a++) {
        k0[a] = s[a] > 1 ? 2 * s[a] : 3;
        strided |= s[a] > 1;
    }
    snprintf(name, sizeof name, "%s.bn0", prefix);
    int y = norm_act(b, x, act, name);
    snprintf(name, sizeof name, "%s.conv0", prefix);
    y = conv(b, y, cout, k0, s, name);
    snprintf(name, sizeof name, "%s.bn1", prefix);
    y = norm_act(b, y, act, name);
    snprintf(name, sizeof name, "%s.conv1", prefix);
    y = conv(b, y, cout, k3, one, name);
    int orig = x;
    if (strided) {
        net_node *nd = add_node(b, NODE_POOL, orig, -1, cin);
        if (!nd) return 0;
        memcpy(nd->k, s, sizeof nd->k);
        orig = nd->out;
    }
    if (cin < cout) {
        net_node *nd = add_node(b, NODE_PADC, orig, -1, cout);
        if (!nd) return 0;
        nd->lo = (cout - cin) / 2, nd->hi = cout - cin - (cout - cin) / 2;
        orig = nd->out;
    } else if (cin > cout) {
        snprintf(name, sizeof name, "%s.short", prefix);
        orig = conv(b, orig, cout, k3, one, name);
    }
    net_node *nd = add_node(b, NODE_ADD, y, orig, cout);
    return nd ? nd->out : 0;
}

/* DLTK get_linear_upsampling_kernel, one axis: kernel 2s (1 when s = 1). */
static void up_kernel_1d(int s, int *k, double f[16])
{
    *k = s > 1 ? 2 * s : 1;
    double factor = (*k + 1) / 2, center = (*k % 2 == 1) ? factor - 1 : factor - 0.5;
    for (int t = 0; t < *k; t++) f[t] = 1 - fabs(t - center) / factor;
}

/* Fixed trilinear upsampling (depthwise transposed conv, not trained). */
static int linear_up(builder *b, int x, const int s[3], const char *name)
{
    int c = b->net->values[x].c, k[3];
    double f[3][16];
    for (int a = 0; a < 3; a++) up_kernel_1d(s[a], &k[a], f[a]);
    int w = param(b, name, "w", 0, DLT_T_WEIGHT, c, 1, k[0], k[1], k[2]);
    if (b->err) return 0;
    int64_t per = (int64_t)k[0] * k[1] * k[2];
    float *host = malloc(sizeof(float) * (size_t)(c * per));
    if (!host) return b->err = dlt_err(DLT_ENOMEM, "net: out of memory"), 0;
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < k[0]; i++)
            for (int j = 0; j < k[1]; j++)
                for (int l = 0; l < k[2]; l++)
                    host[ch * per + (i * k[1] + j) * k[2] + l] = (float)(f[0][i] * f[1][j] * f[2][l]);
    int rc = dlt_tensor_upload(&b->net->params[w].value, host);
    free(host);
    if (rc) return b->err = rc, 0;
    net_node *nd = add_node(b, NODE_CONVT, x, -1, c);
    if (!nd) return 0;
    for (int a = 0; a < 3; a++) nd->cd.k[a] = k[a], nd->cd.stride[a] = s[a];
    nd->cd.groups = c;
    nd->w = w;
    return nd->out;
}

static void dhw_of(const dlt_net_config *c, int scale, int s[3])
{
    s[0] = c->strides[scale][2], s[1] = c->strides[scale][1], s[2] = c->strides[scale][0];
}

static void build(builder *b)
{
    const dlt_net_config *c = &b->net->cfg;
    char name[96];
    int s[3], k3[3] = {3, 3, 3}, one[3] = {1, 1, 1}, skips[DLT_NET_MAX_SCALES];
    int x = add_value(b, c->in_channels);
    dhw_of(c, 0, s);
    int ks[3];
    for (int a = 0; a < 3; a++) ks[a] = (c->kind == DLT_NET_FCN && s[a] > 1) ? 2 * s[a] : 3;
    x = conv(b, x, c->filters[0], c->kind == DLT_NET_FCN ? ks : k3, s, "stem");
    skips[0] = x;
    for (int sc = 1; sc < c->nscales; sc++) {
        dhw_of(c, sc, s);
        for (int u = 0; u < c->res_units; u++) {
            snprintf(name, sizeof name, "enc.%d.%d", sc - 1, u);
            x = res_unit(b, x, c->filters[sc], u == 0 ? s : one, c->act_enc, name);
        }
        skips[sc] = x;
    }
    if (c->kind == DLT_NET_FCN) {
        for (int i = 0, sc = c->nscales - 2; sc >= 0; sc--, i++) {
            dhw_of(c, sc + 1, s);
            if (b->net->values[x].c != c->classes) {
                snprintf(name, sizeof name, "score.%d", i);
                x = conv(b, x, c->classes, one, one, name);
            }
            snprintf(name, sizeof name, "up.%d", i);
            int up = linear_up(b, x, s, name);
            snprintf(name, sizeof name, "skip.%d", i);
            int sk = conv(b, skips[sc], c->classes, one, one, name);
            snprintf(name, sizeof name, "skipbn.%d", i);
            sk = norm_act(b, sk, DLT_ACT_NONE, name);
            net_node *nd = add_node(b, NODE_ADD, up, sk, c->classes);
            x = nd ? nd->out : 0;
        }
        x = conv(b, x, c->classes, one, one, "head");
        return;
    }
    int dec_units = c->kind == DLT_NET_ASYM_UNET ? 1 : c->res_units;
    for (int i = 0, sc = c->nscales - 2; sc >= 0; sc--, i++) {
        dhw_of(c, sc + 1, s);
        snprintf(name, sizeof name, "up.%d", i);
        int up = linear_up(b, x, s, name);
        net_node *nd = add_node(b, NODE_CONCAT, skips[sc], up, c->filters[sc] + b->net->values[up].c);
        x = nd ? nd->out : 0;
        for (int u = 0; u < dec_units; u++) {
            snprintf(name, sizeof name, "dec.%d.%d", i, u);
            x = res_unit(b, x, c->filters[sc], one, c->act_dec, name);
        }
        if (sc >= 1 && sc <= c->deep_sup) { /* an auxiliary head: a dead end the loss reads */
            snprintf(name, sizeof name, "ds.%d", sc - 1);
            int v = conv(b, x, c->classes, one, one, name);
            if (!b->err) b->net->nodes[b->net->nnodes - 1].aux = 1, b->net->aux[sc - 1] = v;
        }
    }
    conv(b, x, c->classes, one, one, "head");
}

/* Parameters in the peer's state_dict order: stem, enc, up, dec (U-Net) or
 * stem, enc, score, up, skip, skipbn (FCN), then head; deep supervision's
 * heads (ds.*, not in the peer) come last, so the others keep their index
 * and initial values. The builder creates
 * them interleaved; a stable sort by group restores the peer's order. */
static int group_of(const char *n)
{
    static const char *g[] = {"stem.", "enc.", "score.", "up.", "dec.", "skip.", "skipbn.", "head."};
    for (int i = 0; i < 8; i++)
        if (!strncmp(n, g[i], strlen(g[i]))) return i;
    if (!strncmp(n, "ds.", 3)) return 8 + atoi(n + 3) % DLT_NET_MAX_SCALES; /* ds.0, ds.1... */
    return 8 + DLT_NET_MAX_SCALES;
}

static void sort_params(dlt_net *net, int *perm_out)
{
    int n = net->nparams;
    dlt_param *tmp = malloc(sizeof *tmp * (size_t)n);
    int o = 0;
    for (int gi = 0; gi <= 8 + DLT_NET_MAX_SCALES; gi++)
        for (int i = 0; i < n; i++)
            if (group_of(net->params[i].name) == gi) perm_out[i] = o, tmp[o++] = net->params[i];
    memcpy(net->params, tmp, sizeof *tmp * (size_t)n);
    free(tmp);
}

static int init_params(dlt_net *net, uint64_t seed)
{
    for (int i = 0; i < net->nparams; i++) {
        dlt_param *p = &net->params[i];
        const char *leaf = strrchr(p->name, '.') + 1;
        if (!strcmp(leaf, "w")) continue; /* fixed upsampling, set at build */
        int64_t n = dlt_tensor_numel(&p->value);
        float *h = malloc(sizeof(float) * (size_t)n);
        if (!h) return dlt_err(DLT_ENOMEM, "net: out of memory");
        if (p->role == DLT_T_WEIGHT) {
            /* LeCun uniform (TF variance_scaling, fan_in, uniform): limit sqrt(3/fan_in) */
            double fan_in = (double)(p->value.c * p->value.d * p->value.h * p->value.w);
            double lim = sqrt(3.0 / fan_in);
            for (int64_t j = 0; j < n; j++)
                h[j] = (float)((2.0 * dlt_rng_uniform_at(seed, 1000 + (uint64_t)i, (uint64_t)j) - 1.0) * lim);
        } else {
            float v = 0;
            if (!strcmp(leaf, "running_var")) v = 1;
            else if (!strcmp(leaf, "weight")) v = strstr(p->name, "_prelu.") ? 0.25f : 1;
            for (int64_t j = 0; j < n; j++) h[j] = v;
        }
        int rc = dlt_tensor_upload(&p->value, h);
        free(h);
        if (rc) return rc;
    }
    return 0;
}

int dlt_net_create(const dlt_net_config *c, dlt_backend *be, uint64_t seed, dlt_net **out)
{
    *out = NULL;
    int rc = dlt_net_config_check(c);
    if (rc) return rc;
    dlt_net *net = calloc(1, sizeof *net);
    if (!net) return dlt_err(DLT_ENOMEM, "net: out of memory");
    net->cfg = *c;
    net->be = be;
    builder b = {net, 0};
    build(&b);
    if (b.err) {
        dlt_net_free(net);
        return b.err;
    }
    int *perm = malloc(sizeof(int) * (size_t)net->nparams);
    if (!perm) {
        dlt_net_free(net);
        return dlt_err(DLT_ENOMEM, "net: out of memory");
    }
    sort_params(net, perm);
    for (int i = 0; i < net->nnodes; i++) {
        net_node *nd = &net->nodes[i];
        int *ix[] = {&nd->w, &nd->gamma, &nd->beta, &nd->rm, &nd->rv};
        for (int j = 0; j < 5; j++)
            if (*ix[j] >= 0) *ix[j] = perm[*ix[j]];
    }
    free(perm);
    if ((rc = init_params(net, seed))) {
        dlt_net_free(net);
        return rc;
    }
    *out = net;
    return 0;
}

void dlt_net_free(dlt_net *net)
{
    if (!net) return;
    dlt_net_release_plan(net);
    for (int i = 0; i < net->nparams; i++) {
        dlt_tensor_release(&net->params[i].value);
        dlt_tensor_release(&net->params[i].grad);
    }
    free(net->params);
    free(net->nodes);
    free(net->values);
    free(net);
}

const dlt_net_config *dlt_net_get_config(const dlt_net *net) { return &net->cfg; }
dlt_backend *dlt_net_backend(const dlt_net *net) { return net->be; }
int dlt_net_nparams(const dlt_net *net) { return net->nparams; }
dlt_param *dlt_net_param(dlt_net *net, int i) { return i >= 0 && i < net->nparams ? &net->params[i] : NULL; }

dlt_param *dlt_net_find_param(dlt_net *net, const char *name)
{
    for (int i = 0; i < net->nparams; i++)
        if (!strcmp(net->params[i].name, name)) return &net->params[i];
    return NULL;
}

int64_t dlt_net_count_trainable(const dlt_net *net)
{
    int64_t n = 0;
    for (int i = 0; i < net->nparams; i++)
        if (net->params[i].trainable) n += dlt_tensor_numel(&net->params[i].value);
    return n;
}
