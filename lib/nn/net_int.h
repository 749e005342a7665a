/* net_int.h - the network graph behind dlt/net.h (internal to libdlt).
 *
 * A net is a list of nodes in execution order; node i reads values in[0],
 * in[1] and writes value out. Value 0 is the network input; the last node's
 * output is the logits. Shapes are planned per input shape: channels are
 * fixed at build time, spatial sizes follow from the strides. */
#ifndef DLT_NET_INT_H
#define DLT_NET_INT_H

#include "dlt/net.h"

enum { NODE_CONV = 1, NODE_CONVT, NODE_NORM, NODE_ACT, NODE_POOL, NODE_PADC, NODE_CONCAT, NODE_ADD };

typedef struct net_node {
    int op;
    int in[2], out;
    dlt_conv_desc cd;          /* CONV/CONVT; padding resolved per plan */
    int w;                     /* CONV/CONVT weight, ACT PReLU slope: param index, or -1 */
    int gamma, beta, rm, rv;   /* NORM param indices (-1 if absent) */
    dlt_norm_desc nd;
    int act;                   /* ACT */
    float alpha;
    int k[3];                  /* POOL: D,H,W */
    int lo, hi;                /* PADC */
    dlt_tensor smean, srstd;   /* NORM: batch statistics saved by a training forward (training plan) */
    int aux;                   /* a deep-supervision head: runs in training forwards only */
} net_node;

typedef struct net_value {
    int c;               /* channels */
    int64_t dhw[3];      /* spatial size for the shape last set by net_exec.c's shapes() */
    int written;         /* backward: gradient holds a contribution */
} net_value;

/* One activation-sized tensor of the executor's pool (net_exec.c). Values
 * and gradients whose lifetimes do not overlap share one, if their logical
 * shapes are identical (a backend may keep a private layout per tensor). */
typedef struct net_buf {
    dlt_tensor t;        /* t.data NULL: free slot */
    int64_t n, c, dhw[3];
    int users;           /* bit m: used by plans[m] */
} net_buf;

/* The memory plan of one mode (plans[0] inference, plans[1] training) for
 * one input shape: a pool buffer for every value (act) and, in training,
 * for every gradient (grad; -1 where none). */
typedef struct net_plan {
    int valid;
    int64_t n, dhw[3];
    int *act, *grad;     /* [nvalues] */
    dlt_tensor probs;    /* inference: dlt_net_predict's softmax, allocated at first use */
    /* inference: the first forward at a shape runs on tensors of its own
     * (dyn), each released after its last reader (last[v], a node index) */
    int runs, dynamic, keep_all;
    int *last;
    dlt_tensor *dyn;
} net_plan;

struct dlt_net {
    dlt_net_config cfg;
    dlt_backend *be;
    int nparams, cap_params;
    dlt_param *params;
    int nnodes, cap_nodes;
    net_node *nodes;
    int nvalues, cap_values;
    net_value *values;
    /* memory plans (net_exec.c) */
    net_plan plans[2];
    int nbufs, cap_bufs;
    net_buf *bufs;
    int trained_fwd;     /* the last forward ran plans[1] and nothing has run since */
    int aux[DLT_NET_MAX_SCALES]; /* the values of the deep-supervision heads (cfg.deep_sup of them) */
};

/* lib/nn/net.c */
int dlt__net_add_param(dlt_net *net, const char *name, int trainable, int role, int64_t n, int64_t c, int64_t d,
                       int64_t h, int64_t w);

#endif
