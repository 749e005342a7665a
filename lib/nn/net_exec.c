/* net_exec.c - running a network graph (see net_int.h): memory planning for
 * an input shape, forward, backward and prediction.
 *
 * Memory plan. A plan gives every value (activation) and, for training,
 * every value's gradient a tensor from a pool of activation-sized buffers.
 * Time runs over the forward steps (node i at time i, the input at -1) and,
 * in training, the backward steps (node i at 2*nnodes-1-i). A tensor lives
 * from the step that first writes it to the last step that reads it; tensors
 * whose lives do not overlap share a buffer when their logical shapes
 * (n, c, d, h, w) are identical (never otherwise: a backend may keep a
 * private layout per tensor). Buffers are handed out by a linear scan in
 * order of start time, which for intervals needs the fewest buffers of each
 * shape. The buffers are allocated once per plan (a training plan when it
 * is made, an inference plan at its second forward, below); steps with the
 * same shape then run without allocating.
 *
 * Inference (training=0): an activation lives until its last consumer has
 * run, so a forward pass holds a few tensors at a time: the skip connections
 * of a U-Net until their concat, and the tensors the current node reads and
 * writes. The logits live until the next forward (they are returned). The
 * first forward of an inference plan (unless its buffers are all shared
 * with the training plan) does not allocate the plan's buffers: it runs on
 * tensors allocated at their first write and released after their last
 * read, so a shape used once (a whole volume as one window) peaks at the
 * most bytes live at once rather than at the pool's size, which exceeds it
 * because buffers are shared only within one shape (default U-Net at 64^3:
 * 112 against 249 MiB). A shape that comes again gets the pool's buffers.
 *
 * Training: backward reads, per node kind, these forward values (kept until
 * that node's backward step, then free for gradients):
 *   CONV  its input x (conv_bwd_weights: dW from x and dy); not its output.
 *   NORM  its input x and its output y (norm_bwd: the fused activation's
 *         derivative from y, the normalised x from x and the saved mean and
 *         1/std, which every NORM node keeps per plan).
 *   ACT   (PReLU) its input x.
 *   POOL  its input x and its output y (the max is found again by comparing
 *         x with y, so no index tensor is kept).
 *   CONVT (the fixed upsampling), PADC, CONCAT, ADD: nothing (their backward
 *         needs dy only).
 * So in a residual unit the norms' inputs and outputs (the latter are the
 * convs' inputs), a strided unit's pooled shortcut, every unit's output and
 * every concat output (the next norm's input) are kept; the second conv's
 * output (read only by the add), the zero-padded or conv shortcut and the
 * upsampled tensor (read only by the concat) are dropped after their
 * consumer's forward step. A gradient lives from the backward step of its
 * value's last consumer (the first to write it, accum=0) to its producer's
 * backward step (which reads it as dy), so during backward the gradients
 * reuse the buffers of activations already consumed; an add whose first
 * input's gradient it writes first hands that input dy's own buffer (the
 * gradient is dy: no copy). The logits have no gradient tensor here:
 * dlogits is the caller's.
 *
 * Deep supervision: an auxiliary head (a 1^3 conv on a decoder output,
 * node.aux) is a dead end: in training its logits live to the end, like
 * the logits, and their gradient is the caller's too; inference skips it.
 *
 * Two plans coexist: plans[1] for training forwards (and backward) and
 * plans[0] for inference forwards, each for the last input shape (batch and
 * size) it ran with. dlt-train's validation inference between training steps
 * therefore replans nothing; a mode whose shape changes replans only itself.
 * Both draw on the one pool: a backward must follow its training forward
 * directly (trained_fwd), so an inference forward may overwrite any training
 * buffer, and an inference plan of the training shape costs no memory.
 *
 * DLT_NET_KEEP_ALL=1 in the environment (read when a plan is made) gives
 * every value and every gradient a buffer of its own and shares nothing
 * between the plans: the straightforward executor, for tests and debugging;
 * results are bit-identical either way. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "net_int.h"

/* ---- the pool ---- */

static int64_t buf_bytes(const net_buf *b) { return 4 * b->n * b->c * b->dhw[0] * b->dhw[1] * b->dhw[2]; }

/* Release the pool buffers no plan uses. */
static void pool_trim(dlt_net *net)
{
    for (int i = 0; i < net->nbufs; i++)
        if (!net->bufs[i].users) dlt_tensor_release(&net->bufs[i].t);
    while (net->nbufs > 0 && !net->bufs[net->nbufs - 1].t.data && !net->bufs[net->nbufs - 1].users) net->nbufs--;
}

static void drop_plan(dlt_net *net, int m)
{
    net_plan *p = &net->plans[m];
    for (int i = 0; i < net->nbufs; i++) net->bufs[i].users &= ~(1 << m);
    for (int v = 0; p->dyn && v < net->nvalues; v++) dlt_tensor_release(&p->dyn[v]);
    free(p->act), free(p->grad), free(p->last), free(p->dyn);
    dlt_tensor_release(&p->probs);
    if (m == 1)
        for (int i = 0; i < net->nnodes; i++) {
            dlt_tensor_release(&net->nodes[i].smean);
            dlt_tensor_release(&net->nodes[i].srstd);
        }
    memset(p, 0, sizeof *p);
    if (m == 1) net->trained_fwd = 0;
    pool_trim(net);
}

void dlt_net_release_plan(dlt_net *net)
{
    drop_plan(net, 0);
    drop_plan(net, 1);
    free(net->bufs);
    net->bufs = NULL, net->nbufs = net->cap_bufs = 0;
}

int64_t dlt_net_plan_bytes(const dlt_net *net, int training)
{
    int64_t bytes = 0;
    int mask = training < 0 ? 3 : 1 << !!training;
    for (int i = 0; i < net->nbufs; i++)
        if (net->bufs[i].users & mask) bytes += buf_bytes(&net->bufs[i]);
    for (int m = 0; m < 2; m++)
        if (mask & (1 << m) && net->plans[m].probs.data) bytes += 4 * dlt_tensor_numel(&net->plans[m].probs);
    if (mask & 2)
        for (int i = 0; i < net->nnodes; i++)
            if (net->nodes[i].smean.data)
                bytes += 4 * (dlt_tensor_numel(&net->nodes[i].smean) + dlt_tensor_numel(&net->nodes[i].srstd));
    return bytes;
}

/* ---- shapes ---- */

/* Spatial size of every value and the convolutions' 'same' padding for an
 * input of d,h,w (sizes already checked against the strides). */
static int shapes(dlt_net *net, int64_t d, int64_t h, int64_t w)
{
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
    return 0;
}

/* ---- planning ---- */

typedef struct life {
    int value, grad; /* which tensor */
    int start, end;  /* times, see the head comment */
    int from;        /* a gradient that takes over the buffer of value from's gradient, or -1 */
} life;

static int life_cmp(const void *a, const void *b)
{
    const life *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->grad != y->grad) return x->grad - y->grad;
    return x->value - y->value;
}

static int is_aux_value(const dlt_net *net, int v)
{
    for (int k = 0; k < net->cfg.deep_sup; k++)
        if (net->aux[k] == v) return 1;
    return 0;
}

static int reads_input_backward(int op) { return op == NODE_CONV || op == NODE_NORM || op == NODE_ACT || op == NODE_POOL; }
static int reads_output_backward(int op) { return op == NODE_NORM || op == NODE_POOL; }

/* Lifetimes of the tensors of mode m (1 = training): fills L, returns the count. */
static int lifetimes(const dlt_net *net, int m, life *L)
{
    const int nn = net->nnodes, nv = net->nvalues, last = nv - 1, end = m ? 2 * nn : nn;
    int nl = 0;
    int *prod = malloc(sizeof(int) * (size_t)nv), *lastcons = malloc(sizeof(int) * (size_t)nv);
    int *keep = malloc(sizeof(int) * (size_t)nv);
    if (!prod || !lastcons || !keep) {
        free(prod), free(lastcons), free(keep);
        return dlt_err(DLT_ENOMEM, "net: out of memory");
    }
    for (int v = 0; v < nv; v++) prod[v] = lastcons[v] = keep[v] = -1;
    for (int i = 0; i < nn; i++) {
        const net_node *nd = &net->nodes[i];
        prod[nd->out] = i;
        for (int k = 0; k < 2; k++)
            if (nd->in[k] >= 0 && i > lastcons[nd->in[k]]) lastcons[nd->in[k]] = i;
        if (!m) continue;
        const int bt = 2 * nn - 1 - i; /* this node's backward step */
        if (reads_input_backward(nd->op) && bt > keep[nd->in[0]]) keep[nd->in[0]] = bt;
        if (reads_output_backward(nd->op) && bt > keep[nd->out]) keep[nd->out] = bt;
    }
    for (int v = 0; v < nv; v++) {
        life *l = &L[nl++];
        l->value = v, l->grad = 0, l->from = -1;
        l->start = v ? prod[v] : -1;
        l->end = v == last || (m && is_aux_value(net, v)) ? end : lastcons[v] > l->start ? lastcons[v] : l->start;
        if (keep[v] > l->end) l->end = keep[v];
    }
    if (m)
        for (int v = 1; v < last; v++) {
            if (lastcons[v] < 0) continue; /* read by no node: no gradient flows into it */
            life *l = &L[nl++];
            const net_node *first = &net->nodes[lastcons[v]]; /* the first to write the gradient */
            l->value = v, l->grad = 1, l->from = -1;
            l->start = 2 * nn - 1 - lastcons[v];
            l->end = 2 * nn - 1 - prod[v];
            /* an add's gradient to its first input is dy itself: when the add
             * writes it first, it takes over dy's buffer (no copy) */
            if (first->op == NODE_ADD && first->in[0] == v && first->in[1] != v && first->out != last &&
                lastcons[first->out] >= 0)
                l->from = first->out;
        }
    free(prod), free(lastcons), free(keep);
    return nl;
}

static int64_t value_bytes(const dlt_net *net, int v, int64_t n)
{
    const net_value *x = &net->values[v];
    return 4 * n * x->c * x->dhw[0] * x->dhw[1] * x->dhw[2];
}

/* A pool slot for a tensor of shape n,c,dhw: a free slot index, growing the
 * array (-1 if out of memory). */
static int new_buf(dlt_net *net, int64_t n, int c, const int64_t dhw[3])
{
    int i = 0;
    while (i < net->nbufs && (net->bufs[i].t.data || net->bufs[i].users)) i++;
    if (i == net->nbufs) {
        if (net->nbufs == net->cap_bufs) {
            int cap = net->cap_bufs ? 2 * net->cap_bufs : 64;
            net_buf *b = realloc(net->bufs, sizeof *b * (size_t)cap);
            if (!b) return -1;
            net->bufs = b, net->cap_bufs = cap;
        }
        net->nbufs++;
    }
    net_buf *b = &net->bufs[i];
    memset(b, 0, sizeof *b);
    b->n = n, b->c = c;
    memcpy(b->dhw, dhw, sizeof b->dhw);
    return i;
}

/* Allocate the pool buffers of plans[m] that have no storage yet. */
static int materialize(dlt_net *net, int m)
{
    for (int i = 0; i < net->nbufs; i++) {
        net_buf *q = &net->bufs[i];
        int rc;
        if (q->users & (1 << m) && !q->t.data &&
            (rc = dlt_tensor_alloc(net->be, &q->t, DLT_T_ACT, q->n, q->c, q->dhw[0], q->dhw[1], q->dhw[2])))
            return rc;
    }
    return 0;
}

static int plan_make(dlt_net *net, int m, int64_t n)
{
    net_plan *p = &net->plans[m];
    const int nv = net->nvalues, keep_all = getenv("DLT_NET_KEEP_ALL") && atoi(getenv("DLT_NET_KEEP_ALL")) > 0;
    life *L = malloc(sizeof *L * (size_t)(2 * nv));
    int *busy = NULL, rc = 0;
    p->act = malloc(sizeof(int) * (size_t)nv);
    p->grad = malloc(sizeof(int) * (size_t)nv);
    p->last = malloc(sizeof(int) * (size_t)nv);
    p->dyn = calloc((size_t)nv, sizeof(dlt_tensor));
    if (!L || !p->act || !p->grad || !p->last || !p->dyn) goto nomem;
    for (int v = 0; v < nv; v++) p->act[v] = p->grad[v] = -1;
    int nl = lifetimes(net, m, L);
    if (nl < 0) {
        rc = nl;
        goto fail;
    }
    qsort(L, (size_t)nl, sizeof *L, life_cmp);
    /* busy[b]: the end of the last tensor of this plan in buffer b */
    if (!(busy = malloc(sizeof(int) * (size_t)(net->nbufs + nl)))) goto nomem;
    for (int b = 0; b < net->nbufs + nl; b++) busy[b] = INT_MIN;
    for (int k = 0; k < nl; k++) {
        const net_value *v = &net->values[L[k].value];
        int b = -1;
        if (L[k].from >= 0 && !keep_all) { /* its buffer ends where this starts: one tensor */
            b = p->grad[L[k].from];
            if (busy[b] < L[k].end) busy[b] = L[k].end;
            p->grad[L[k].value] = b;
            continue;
        }
        for (int i = 0; !keep_all && i < net->nbufs && b < 0; i++) {
            const net_buf *q = &net->bufs[i];
            if ((q->t.data || q->users) && busy[i] < L[k].start && q->n == n && q->c == v->c &&
                !memcmp(q->dhw, v->dhw, sizeof q->dhw))
                b = i;
        }
        if (b < 0 && (b = new_buf(net, n, v->c, v->dhw)) < 0) goto nomem;
        net->bufs[b].users |= 1 << m;
        busy[b] = L[k].end;
        (L[k].grad ? p->grad : p->act)[L[k].value] = b;
        if (!L[k].grad) p->last[L[k].value] = L[k].end;
    }
    p->keep_all = keep_all;
    if (m && (rc = materialize(net, m))) goto fail; /* inference: see prepare() */
    for (int i = 0; m && i < net->nnodes; i++) {
        net_node *nd = &net->nodes[i];
        if (nd->op != NODE_NORM) continue;
        int64_t ns = nd->nd.kind == DLT_NORM_INSTANCE ? n * net->values[nd->in[0]].c : net->values[nd->in[0]].c;
        if ((rc = dlt_tensor_alloc(net->be, &nd->smean, DLT_T_VEC, ns, 1, 1, 1, 1)) ||
            (rc = dlt_tensor_alloc(net->be, &nd->srstd, DLT_T_VEC, ns, 1, 1, 1, 1)))
            goto fail;
    }
    p->valid = 1;
    if (dlt_log_level() >= DLT_LOG_DEBUG) {
        /* the bound for any reuse: the most bytes live at one time */
        int64_t live = 0, tot = 0;
        for (int t = -1; t <= 2 * net->nnodes; t++) {
            int64_t sum = 0;
            for (int k = 0; k < nl; k++)
                if (L[k].start <= t && t <= L[k].end) sum += value_bytes(net, L[k].value, n);
            if (sum > live) live = sum;
        }
        for (int k = 0; k < nl; k++) tot += value_bytes(net, L[k].value, n);
        dlt_log(DLT_LOG_DEBUG, "net: %s plan for %lld x %lldx%lldx%lld: %.1f MiB (most live at once %.1f MiB, one "
                "tensor each %.1f MiB)%s", m ? "training" : "inference", (long long)n, (long long)p->dhw[2],
                (long long)p->dhw[1], (long long)p->dhw[0], dlt_net_plan_bytes(net, m) / 1048576.0, live / 1048576.0,
                tot / 1048576.0, keep_all ? " (DLT_NET_KEEP_ALL)" : "");
    }
    free(L), free(busy);
    return 0;
nomem:
    rc = dlt_err(DLT_ENOMEM, "net: out of memory");
fail:
    free(L), free(busy);
    drop_plan(net, m);
    return rc;
}

/* Make plans[m] fit a batch of n x d,h,w (replanning only when the shape
 * changed) and set the shapes and paddings for it. */
static int plan(dlt_net *net, int m, int64_t n, int64_t d, int64_t h, int64_t w)
{
    net_plan *p = &net->plans[m];
    if (n < 1) return dlt_err(DLT_EINVAL, "net: batch size %lld", (long long)n);
    int rc = dlt_net_check_size(&net->cfg, w, h, d);
    if (rc) return rc;
    if ((rc = shapes(net, d, h, w))) return rc;
    if (p->valid && p->n == n && p->dhw[0] == d && p->dhw[1] == h && p->dhw[2] == w) return 0;
    drop_plan(net, m);
    p->n = n, p->dhw[0] = d, p->dhw[1] = h, p->dhw[2] = w;
    if ((rc = plan_make(net, m, n)))
        return dlt_err_prefix(rc, "net: activations for a batch of %lld x %lldx%lldx%lld", (long long)n,
                              (long long)w, (long long)h, (long long)d);
    return 0;
}

/* ---- running ---- */

static void dyn_release(dlt_net *net)
{
    net_plan *p = &net->plans[0];
    for (int v = 0; p->dyn && v < net->nvalues; v++) dlt_tensor_release(&p->dyn[v]);
    p->dynamic = 0;
}

/* Storage for a forward of plans[m]: the plan's buffers; but the first
 * inference forward of a plan whose buffers are not all there yet (not
 * shared with the training plan) runs on tensors allocated at their first
 * write and released after their last read, so that a one-off shape (a
 * whole volume as one window) peaks at the most bytes live at once. A
 * shape that comes again gets the plan's buffers (no allocation per pass). */
static int prepare(dlt_net *net, int m)
{
    net_plan *p = &net->plans[m];
    int missing = 0;
    for (int i = 0; i < net->nbufs; i++) missing |= (net->bufs[i].users & (1 << m)) && !net->bufs[i].t.data;
    if (!missing) return 0;
    if (m || p->runs || p->keep_all) return materialize(net, m);
    p->dynamic = 1;
    const net_value *x = &net->values[0];
    return dlt_tensor_alloc(net->be, &p->dyn[0], DLT_T_ACT, p->n, x->c, x->dhw[0], x->dhw[1], x->dhw[2]);
}

static dlt_tensor *ACT(dlt_net *net, int m, int v)
{
    net_plan *p = &net->plans[m];
    return p->dynamic ? &p->dyn[v] : &net->bufs[p->act[v]].t;
}
static dlt_tensor *GRAD(dlt_net *net, int v) { return &net->bufs[net->plans[1].grad[v]].t; }
static const dlt_tensor *P(dlt_net *net, int i) { return i >= 0 ? &net->params[i].value : NULL; }
static dlt_tensor *PM(dlt_net *net, int i) { return i >= 0 ? &net->params[i].value : NULL; }

static int run_forward(dlt_net *net, int training, const dlt_tensor **logits)
{
    dlt_backend *be = net->be;
    const int m = !!training;
    net_plan *p = &net->plans[m];
    for (int i = 0; i < net->nnodes; i++) {
        net_node *nd = &net->nodes[i];
        const dlt_tensor *x = ACT(net, m, nd->in[0]), *x1 = nd->in[1] >= 0 ? ACT(net, m, nd->in[1]) : NULL;
        dlt_tensor *y = ACT(net, m, nd->out);
        int rc = 0;
        if (nd->aux && !training) { /* deep supervision's heads serve the training loss only */
            if (p->dynamic && p->last[nd->in[0]] == i) dlt_tensor_release(&p->dyn[nd->in[0]]);
            continue;
        }
        if (p->dynamic) {
            const net_value *o = &net->values[nd->out];
            if ((rc = dlt_tensor_alloc(be, y, DLT_T_ACT, p->n, o->c, o->dhw[0], o->dhw[1], o->dhw[2]))) {
                dyn_release(net);
                return dlt_err_prefix(rc, "net: forward node %d", i);
            }
        }
        switch (nd->op) {
        case NODE_CONV: rc = dlt_op_conv_fwd(be, &nd->cd, x, P(net, nd->w), NULL, y); break;
        case NODE_CONVT: rc = dlt_op_convt_fwd(be, &nd->cd, x, P(net, nd->w), NULL, y); break;
        case NODE_NORM:
            rc = dlt_op_norm_fwd(be, &nd->nd, training, x, P(net, nd->gamma), P(net, nd->beta), PM(net, nd->rm),
                              PM(net, nd->rv), training ? &nd->smean : NULL, training ? &nd->srstd : NULL, y);
            break;
        case NODE_ACT: rc = dlt_op_act_fwd(be, nd->act, nd->alpha, P(net, nd->w), x, y); break;
        case NODE_POOL: rc = dlt_op_maxpool_fwd(be, nd->k, x, y); break;
        case NODE_PADC: rc = dlt_op_padc_fwd(be, nd->lo, nd->hi, x, y); break;
        case NODE_CONCAT: rc = dlt_op_concat_fwd(be, x, x1, y); break;
        case NODE_ADD: rc = dlt_op_add_fwd(be, x, x1, y); break;
        }
        if (rc) {
            if (p->dynamic) dyn_release(net);
            return dlt_err_prefix(rc, "net: forward node %d", i);
        }
        if (p->dynamic) /* the logits' life ends after the last node: they stay */
            for (int k = 0; k < 3; k++) {
                int v = k < 2 ? nd->in[k] : nd->out;
                if (v >= 0 && p->last[v] == i && v != net->nvalues - 1) dlt_tensor_release(&p->dyn[v]);
            }
    }
    p->runs++;
    net->trained_fwd = m;
    if (logits) *logits = ACT(net, m, net->nvalues - 1);
    return 0;
}

int dlt_net_forward(dlt_net *net, const float *x, int64_t n, int64_t d, int64_t h, int64_t w, int training,
                    const dlt_tensor **logits)
{
    const int m = !!training;
    net->trained_fwd = 0; /* any forward, even a failed one, ends the last training forward's backward */
    dyn_release(net);
    int rc = plan(net, m, n, d, h, w);
    if (!rc) rc = prepare(net, m);
    if (rc) return rc;
    if ((rc = dlt_tensor_upload(ACT(net, m, 0), x))) return rc;
    return run_forward(net, training, logits);
}

int dlt_net_forward_tensor(dlt_net *net, const dlt_tensor *x, int training, const dlt_tensor **logits)
{
    const int m = !!training;
    net->trained_fwd = 0;
    dyn_release(net);
    if (x->c != net->cfg.in_channels)
        return dlt_err(DLT_ESHAPE, "net: input has %lld channels, the network takes %d", (long long)x->c,
                       net->cfg.in_channels);
    int rc = plan(net, m, x->n, x->d, x->h, x->w);
    if (!rc) rc = prepare(net, m);
    if (rc) return rc;
    if ((rc = dlt_op_copy(net->be, x, ACT(net, m, 0), 0))) return rc;
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
        if (net->params[i].trainable) rc = dlt_tensor_zero(&net->params[i].grad);
    return rc;
}

static dlt_tensor *G(dlt_net *net, int i) { return i >= 0 && net->params[i].trainable ? &net->params[i].grad : NULL; }

int dlt_net_aux_count(const dlt_net *net) { return net->cfg.deep_sup; }

const dlt_tensor *dlt_net_aux_logits(dlt_net *net, int k)
{
    if (k < 0 || k >= net->cfg.deep_sup || !net->plans[1].valid || !net->trained_fwd) return NULL;
    return ACT(net, 1, net->aux[k]);
}

static int same_dims(const dlt_tensor *a, const dlt_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->d == b->d && a->h == b->h && a->w == b->w;
}

int dlt_net_backward(dlt_net *net, const dlt_tensor *dlogits) { return dlt_net_backward_aux(net, dlogits, NULL); }

int dlt_net_backward_aux(dlt_net *net, const dlt_tensor *dlogits, const dlt_tensor *const *daux)
{
    dlt_backend *be = net->be;
    if (!net->plans[1].valid || !net->trained_fwd)
        return dlt_err(DLT_EINVAL, "net: backward needs a training-mode forward first");
    const int last = net->nvalues - 1;
    if (!same_dims(dlogits, ACT(net, 1, last))) return dlt_err(DLT_ESHAPE, "net: dlogits shape differs from the logits");
    const dlt_tensor *dys[DLT_NET_MAX_SCALES] = {0}; /* per value of an aux head: its gradient */
    for (int k = 0; daux && k < net->cfg.deep_sup; k++)
        if ((dys[k] = daux[k]) && !same_dims(daux[k], ACT(net, 1, net->aux[k])))
            return dlt_err(DLT_ESHAPE, "net: the gradient of auxiliary output %d differs from its logits' shape", k);
    int rc = ensure_param_grads(net);
    if (rc) return rc;
    /* The buffers of consumed activations now take gradients: no second backward. */
    net->trained_fwd = 0;
    for (int i = 0; i < net->nvalues; i++) net->values[i].written = 0;
    for (int i = net->nnodes - 1; i >= 0; i--) {
        net_node *nd = &net->nodes[i];
        net_value *out = &net->values[nd->out];
        const dlt_tensor *dy = nd->out == last ? dlogits : NULL;
        for (int k = 0; nd->aux && k < net->cfg.deep_sup; k++)
            if (net->aux[k] == nd->out) dy = dys[k];
        if (nd->aux && !dy) continue; /* an auxiliary head without a gradient */
        if (!dy && !out->written) continue; /* nothing flows back through this node */
        if (!dy) dy = GRAD(net, nd->out);
        net_value *a = &net->values[nd->in[0]], *b = nd->in[1] >= 0 ? &net->values[nd->in[1]] : NULL;
        const int ga = nd->in[0] != 0, gb = b && nd->in[1] != 0; /* the network input needs no gradient */
        const dlt_tensor *x = ACT(net, 1, nd->in[0]);
        dlt_tensor *dx = ga ? GRAD(net, nd->in[0]) : NULL, *dx1 = gb ? GRAD(net, nd->in[1]) : NULL;
        switch (nd->op) {
        case NODE_CONV:
            if (ga) rc = dlt_op_conv_bwd_data(be, &nd->cd, dy, P(net, nd->w), dx, a->written);
            if (!rc) rc = dlt_op_conv_bwd_weights(be, &nd->cd, x, dy, G(net, nd->w), NULL);
            break;
        case NODE_CONVT:
            if (ga) rc = dlt_op_convt_bwd_data(be, &nd->cd, dy, P(net, nd->w), dx, a->written);
            break;
        case NODE_NORM:
            if (ga)
                rc = dlt_op_norm_bwd(be, &nd->nd, x, ACT(net, 1, nd->out), dy, P(net, nd->gamma), &nd->smean,
                                  &nd->srstd, dx, a->written, G(net, nd->gamma), G(net, nd->beta));
            break;
        case NODE_ACT:
            if (ga) rc = dlt_op_act_bwd(be, nd->act, nd->alpha, P(net, nd->w), x, dy, dx, a->written, G(net, nd->w));
            break;
        case NODE_POOL:
            if (ga) rc = dlt_op_maxpool_bwd(be, nd->k, x, ACT(net, 1, nd->out), dy, dx, a->written);
            break;
        case NODE_PADC:
            if (ga) rc = dlt_op_padc_bwd(be, nd->lo, nd->hi, dy, dx, a->written);
            break;
        case NODE_CONCAT:
            if (ga && gb) rc = dlt_op_concat_bwd(be, dy, dx, a->written, dx1, b->written);
            break;
        case NODE_ADD: /* dx may be dy's own buffer (plan_make's takeover) */
            if (ga && dx != dy) rc = dlt_op_copy(be, dy, dx, a->written);
            if (!rc && gb) rc = dlt_op_copy(be, dy, dx1, b->written);
            break;
        }
        if (rc) return dlt_err_prefix(rc, "net: backward node %d", i);
        if (ga) a->written = 1;
        if (gb) b->written = 1;
    }
    return 0;
}

int dlt_net_predict(dlt_net *net, const float *x, int64_t n, int64_t d, int64_t h, int64_t w, float *probs)
{
    const dlt_tensor *lg;
    int rc = dlt_net_forward(net, x, n, d, h, w, 0, &lg);
    if (rc) return rc;
    dlt_tensor *pr = &net->plans[0].probs;
    if (!pr->data && (rc = dlt_tensor_alloc(net->be, pr, DLT_T_ACT, lg->n, lg->c, lg->d, lg->h, lg->w))) return rc;
    if ((rc = dlt_op_softmax_fwd(net->be, lg, pr))) return rc;
    return dlt_tensor_download(pr, probs);
}
