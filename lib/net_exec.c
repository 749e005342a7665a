/* net_exec.c - running a network graph (see net_int.h): planning the
 * activations for an input shape, forward, backward and prediction. Every
 * value keeps its tensor for the backward pass; gradients borrow buffers
 * from a pool only while they are live (first consumer's backward to the
 * producer's), so a backward holds a few gradients at a time, not all. */
#include <stdlib.h>
#include <string.h>

#include "net_int.h"

void dlt_net_release_plan(dlt_net *net)
{
    for (int i = 0; i < net->nvalues; i++) {
        dlt_tensor_release(&net->values[i].t);
        memset(&net->values[i].g, 0, sizeof net->values[i].g); /* a view of a pool buffer */
        net->values[i].gi = -1;
    }
    for (int i = 0; i < net->ngpool; i++) dlt_tensor_release(&net->gpool[i].t);
    free(net->gpool);
    net->gpool = NULL;
    net->ngpool = net->cap_gpool = 0;
    for (int i = 0; i < net->nnodes; i++) {
        dlt_tensor_release(&net->nodes[i].smean);
        dlt_tensor_release(&net->nodes[i].srstd);
    }
    dlt_tensor_release(&net->probs);
    net->planned = net->grads_ready = net->trained_fwd = 0;
}

static int alloc_value(dlt_net *net, dlt_tensor *t, const net_value *v)
{
    return dlt_tensor_alloc(net->be, t, DLT_T_ACT, net->plan_n, v->c, v->dhw[0], v->dhw[1], v->dhw[2]);
}

static int plan(dlt_net *net, int64_t n, int64_t d, int64_t h, int64_t w)
{
    if (net->planned && net->plan_n == n && net->plan_dhw[0] == d && net->plan_dhw[1] == h && net->plan_dhw[2] == w)
        return 0;
    dlt_net_release_plan(net);
    if (n < 1) return dlt_err(DLT_EINVAL, "net: batch size %lld", (long long)n);
    int rc = dlt_net_check_size(&net->cfg, w, h, d);
    if (rc) return rc;
    net->plan_n = n, net->plan_dhw[0] = d, net->plan_dhw[1] = h, net->plan_dhw[2] = w;
    net->values[0].dhw[0] = d, net->values[0].dhw[1] = h, net->values[0].dhw[2] = w;
    for (int i = 0; i < net->nnodes; i++) {
        net_node *nd = &net->nodes[i];
        const int64_t *in = net->values[nd->in[0]].dhw;
        int64_t *out = net->values[nd->out].dhw;
        switch (nd->op) {
        case NODE_CONV: dlt_conv_same(&nd->cd, in, out); break;
        case NODE_CONVT: {
            int64_t small[3];
            for (int a = 0; a < 3; a++) out[a] = in[a] * nd->cd.stride[a];
            dlt_conv_same(&nd->cd, out, small);
            break;
        }
        case NODE_POOL:
            for (int a = 0; a < 3; a++) out[a] = in[a] / nd->k[a];
            break;
        default: memcpy(out, in, sizeof(int64_t) * 3);
        }
        if ((nd->op == NODE_CONCAT || nd->op == NODE_ADD) &&
            memcmp(in, net->values[nd->in[1]].dhw, sizeof(int64_t) * 3))
            return dlt_err(DLT_ESHAPE, "net: internal error: node %d joins different sizes", i);
    }
    for (int i = 0; i < net->nvalues; i++)
        if ((rc = alloc_value(net, &net->values[i].t, &net->values[i]))) goto fail;
    for (int i = 0; i < net->nnodes; i++) {
        net_node *nd = &net->nodes[i];
        if (nd->op != NODE_NORM) continue;
        int64_t ns = nd->nd.kind == DLT_NORM_INSTANCE ? n * net->values[nd->in[0]].c : net->values[nd->in[0]].c;
        if ((rc = dlt_tensor_alloc(net->be, &nd->smean, DLT_T_VEC, ns, 1, 1, 1, 1)) ||
            (rc = dlt_tensor_alloc(net->be, &nd->srstd, DLT_T_VEC, ns, 1, 1, 1, 1)))
            goto fail;
    }
    net->planned = 1;
    return 0;
fail:
    dlt_net_release_plan(net);
    return dlt_err_prefix(rc, "net: activations for a batch of %lld x %lldx%lldx%lld", (long long)n, (long long)w,
                          (long long)h, (long long)d);
}

static const dlt_tensor *P(dlt_net *net, int i) { return i >= 0 ? &net->params[i].value : NULL; }
static dlt_tensor *PM(dlt_net *net, int i) { return i >= 0 ? &net->params[i].value : NULL; }

static int run_forward(dlt_net *net, int training, const dlt_tensor **logits)
{
    dlt_backend *be = net->be;
    for (int i = 0; i < net->nnodes; i++) {
        net_node *nd = &net->nodes[i];
        const dlt_tensor *x = &net->values[nd->in[0]].t, *x1 = nd->in[1] >= 0 ? &net->values[nd->in[1]].t : NULL;
        dlt_tensor *y = &net->values[nd->out].t;
        int rc = 0;
        switch (nd->op) {
        case NODE_CONV: rc = be->conv_fwd(be, &nd->cd, x, P(net, nd->w), NULL, y); break;
        case NODE_CONVT: rc = be->convt_fwd(be, &nd->cd, x, P(net, nd->w), NULL, y); break;
        case NODE_NORM:
            rc = be->norm_fwd(be, &nd->nd, training, x, P(net, nd->gamma), P(net, nd->beta), PM(net, nd->rm),
                              PM(net, nd->rv), training ? &nd->smean : NULL, training ? &nd->srstd : NULL, y);
            break;
        case NODE_ACT: rc = be->act_fwd(be, nd->act, nd->alpha, P(net, nd->w), x, y); break;
        case NODE_POOL: rc = be->maxpool_fwd(be, nd->k, x, y); break;
        case NODE_PADC: rc = be->padc_fwd(be, nd->lo, nd->hi, x, y); break;
        case NODE_CONCAT: rc = be->concat_fwd(be, x, x1, y); break;
        case NODE_ADD: rc = be->add_fwd(be, x, x1, y); break;
        }
        if (rc) return dlt_err_prefix(rc, "net: forward node %d", i);
    }
    net->trained_fwd = training;
    if (logits) *logits = &net->values[net->nvalues - 1].t;
    return 0;
}

int dlt_net_forward(dlt_net *net, const float *x, int64_t n, int64_t d, int64_t h, int64_t w, int training,
                    const dlt_tensor **logits)
{
    int rc = plan(net, n, d, h, w);
    if (rc) return rc;
    if ((rc = net->be->upload(net->be, &net->values[0].t, x))) return rc;
    return run_forward(net, training, logits);
}

int dlt_net_forward_tensor(dlt_net *net, const dlt_tensor *x, int training, const dlt_tensor **logits)
{
    if (x->c != net->cfg.in_channels)
        return dlt_err(DLT_ESHAPE, "net: input has %lld channels, the network takes %d", (long long)x->c,
                       net->cfg.in_channels);
    int rc = plan(net, x->n, x->d, x->h, x->w);
    if (rc) return rc;
    if ((rc = net->be->copy(net->be, x, &net->values[0].t, 0))) return rc;
    return run_forward(net, training, logits);
}

static int ensure_param_grads(dlt_net *net)
{
    for (int i = 0; i < net->nparams; i++) {
        dlt_param *p = &net->params[i];
        if (!p->trainable || p->grad.data) continue;
        int rc = dlt_tensor_alloc(net->be, &p->grad, p->role, p->value.n, p->value.c, p->value.d, p->value.h,
                                  p->value.w);
        if (rc) return rc;
    }
    return 0;
}

int dlt_net_zero_grad(dlt_net *net)
{
    int rc = ensure_param_grads(net);
    for (int i = 0; !rc && i < net->nparams; i++)
        if (net->params[i].trainable) rc = net->be->zero(net->be, &net->params[i].grad);
    return rc;
}

static dlt_tensor *G(dlt_net *net, int i) { return i >= 0 && net->params[i].trainable ? &net->params[i].grad : NULL; }

/* Lend value v a gradient buffer of its shape (contents undefined: its
 * first writer overwrites, accum = 0). */
static int grad_acquire(dlt_net *net, net_value *v)
{
    if (v->gi >= 0) return 0;
    for (int i = 0; i < net->ngpool; i++) {
        dlt_tensor *t = &net->gpool[i].t;
        if (!net->gpool[i].busy && t->c == v->c && t->d == v->dhw[0] && t->h == v->dhw[1] && t->w == v->dhw[2]) {
            net->gpool[i].busy = 1;
            v->g = *t, v->gi = i;
            return 0;
        }
    }
    if (net->ngpool == net->cap_gpool) {
        int cap = net->cap_gpool ? 2 * net->cap_gpool : 16;
        struct net_gbuf *p = realloc(net->gpool, sizeof *p * (size_t)cap);
        if (!p) return dlt_err(DLT_ENOMEM, "net: out of memory");
        net->gpool = p, net->cap_gpool = cap;
    }
    struct net_gbuf *b = &net->gpool[net->ngpool];
    memset(b, 0, sizeof *b);
    int rc = alloc_value(net, &b->t, v);
    if (rc) return dlt_err_prefix(rc, "net: gradients");
    b->busy = 1;
    v->g = b->t, v->gi = net->ngpool++;
    return 0;
}

static void grad_release(dlt_net *net, net_value *v)
{
    if (v->gi < 0) return;
    net->gpool[v->gi].busy = 0;
    memset(&v->g, 0, sizeof v->g);
    v->gi = -1;
}

int dlt_net_backward(dlt_net *net, const dlt_tensor *dlogits)
{
    dlt_backend *be = net->be;
    if (!net->planned || !net->trained_fwd)
        return dlt_err(DLT_EINVAL, "net: backward needs a training-mode forward first");
    const int last = net->nvalues - 1;
    const dlt_tensor *lg = &net->values[last].t;
    if (dlogits->n != lg->n || dlogits->c != lg->c || dlogits->d != lg->d || dlogits->h != lg->h ||
        dlogits->w != lg->w)
        return dlt_err(DLT_ESHAPE, "net: dlogits shape differs from the logits");
    int rc = ensure_param_grads(net);
    if (rc) return rc;
    for (int i = 0; i < net->ngpool; i++) net->gpool[i].busy = 0;
    for (int i = 0; i < net->nvalues; i++) {
        net->values[i].written = 0;
        net->values[i].gi = -1;
        memset(&net->values[i].g, 0, sizeof net->values[i].g);
    }
    for (int i = net->nnodes - 1; i >= 0; i--) {
        net_node *nd = &net->nodes[i];
        net_value *out = &net->values[nd->out];
        if (nd->out != last && !out->written) continue; /* nothing flows back through this node */
        const dlt_tensor *dy = nd->out == last ? dlogits : &out->g;
        const dlt_tensor *y = &out->t;
        net_value *a = &net->values[nd->in[0]], *b = nd->in[1] >= 0 ? &net->values[nd->in[1]] : NULL;
        const int ga = nd->in[0] != 0, gb = b && nd->in[1] != 0; /* the network input needs no gradient */
        /* add: the first input's gradient is dy itself, so when it has none
         * yet it takes over dy's buffer instead of a copy */
        const int take = nd->op == NODE_ADD && ga && !a->written && a->gi < 0 && nd->out != last &&
                         nd->in[0] != nd->in[1] && out->gi >= 0;
        if (take) {
            a->g = out->g, a->gi = out->gi;
            out->gi = -1;
        }
        if ((ga && (rc = grad_acquire(net, a))) || (gb && (rc = grad_acquire(net, b)))) return rc;
        switch (nd->op) {
        case NODE_CONV:
            if (ga) rc = be->conv_bwd_data(be, &nd->cd, dy, P(net, nd->w), &a->g, a->written);
            if (!rc) rc = be->conv_bwd_weights(be, &nd->cd, &a->t, dy, G(net, nd->w), NULL);
            break;
        case NODE_CONVT:
            if (ga) rc = be->convt_bwd_data(be, &nd->cd, dy, P(net, nd->w), &a->g, a->written);
            break;
        case NODE_NORM:
            if (ga)
                rc = be->norm_bwd(be, &nd->nd, &a->t, y, dy, P(net, nd->gamma), &nd->smean, &nd->srstd, &a->g,
                                  a->written, G(net, nd->gamma), G(net, nd->beta));
            break;
        case NODE_ACT:
            if (ga) rc = be->act_bwd(be, nd->act, nd->alpha, P(net, nd->w), &a->t, dy, &a->g, a->written, G(net, nd->w));
            break;
        case NODE_POOL:
            if (ga) rc = be->maxpool_bwd(be, nd->k, &a->t, y, dy, &a->g, a->written);
            break;
        case NODE_PADC:
            if (ga) rc = be->padc_bwd(be, nd->lo, nd->hi, dy, &a->g, a->written);
            break;
        case NODE_CONCAT:
            if (ga && gb) rc = be->concat_bwd(be, dy, &a->g, a->written, &b->g, b->written);
            break;
        case NODE_ADD:
            if (ga && !take) rc = be->copy(be, dy, &a->g, a->written);
            if (!rc && gb) rc = be->copy(be, dy, &b->g, b->written);
            break;
        }
        if (rc) return dlt_err_prefix(rc, "net: backward node %d", i);
        if (ga) a->written = 1;
        if (gb) b->written = 1;
        if (nd->out != last) grad_release(net, out); /* its producer has consumed it */
    }
    return 0;
}

int dlt_net_predict(dlt_net *net, const float *x, int64_t n, int64_t d, int64_t h, int64_t w, float *probs)
{
    const dlt_tensor *lg;
    int rc = dlt_net_forward(net, x, n, d, h, w, 0, &lg);
    if (rc) return rc;
    if (!net->probs.data && (rc = dlt_tensor_alloc(net->be, &net->probs, DLT_T_ACT, lg->n, lg->c, lg->d, lg->h, lg->w)))
        return rc;
    if ((rc = net->be->softmax_fwd(net->be, lg, &net->probs))) return rc;
    return net->be->download(net->be, &net->probs, probs);
}
