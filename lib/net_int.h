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
    dlt_tensor smean, srstd;   /* NORM, per plan */
} net_node;

typedef struct net_value {
    int c;               /* channels */
    int64_t dhw[3];      /* spatial size in the current plan */
    dlt_tensor t, g;     /* value and gradient (g: a buffer of the gradient pool while live) */
    int gi;              /* backward: the pool buffer g borrows, or -1 */
    int written;         /* backward: gradient holds a contribution */
} net_value;

struct dlt_net {
    dlt_net_config cfg;
    dlt_backend *be;
    int nparams, cap_params;
    dlt_param *params;
    int nnodes, cap_nodes;
    net_node *nodes;
    int nvalues, cap_values;
    net_value *values;
    /* current plan */
    int64_t plan_n, plan_dhw[3];
    int planned, grads_ready, trained_fwd;
    /* gradient pool: a value's gradient lives from its first consumer's
     * backward to its producer's, so buffers of one shape are recycled */
    struct net_gbuf {
        dlt_tensor t;
        int busy;
    } *gpool;
    int ngpool, cap_gpool;
    dlt_tensor probs; /* predict's softmax output */
};

/* lib/net.c */
int dlt__net_add_param(dlt_net *net, const char *name, int trainable, int role, int64_t n, int64_t c, int64_t d,
                       int64_t h, int64_t w);

#endif
