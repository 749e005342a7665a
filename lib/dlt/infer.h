/* dlt/infer.h - sliding-window inference over a volume of any shape, with
 * bounded memory: window placement, mean or Gaussian blending, mirroring
 * test-time augmentation, slab-wise accumulation that emits finished z
 * slices, and post-processing (largest connected component per class).
 *
 * The network is reached through a callback (dlt_infer_predict_fn), so the
 * same code serves dlt-infer, dlt-train's validation and the unit tests
 * (which feed synthetic probability functions).
 *
 * Placement (DLTK and the peer's `sliding`): per axis with volume size n and
 * window p >= n, starts 0, s, 2s, ... with s = max(1, floor(p*(1-overlap))),
 * plus n-p when the last window does not reach the far side. When n < p
 * there is one window, centred: start -floor((p-n)/2); voxels outside the
 * volume are padded (zero, edge or reflect, as dlt-sample's --pad) and
 * their predictions dropped.
 *
 * Blending: every voxel's class scores are the weighted sum, over the
 * windows (and mirrorings) covering it, of the predicted probabilities;
 * weights 1 (mean, DLTK) or a separable Gaussian centred on the window,
 * sigma = sigma_frac * window per axis (nnU-Net: 1/8), peak 1. The label is
 * the argmax (ties: lowest class); probabilities are the normalised sums.
 *
 * Memory: the accumulator holds classes x min(window_z, nz) x ny x nx
 * floats (a ring over z); slices are finished as soon as no later window
 * touches them. Plus one batch of windows in and out:
 * batch x (channels + classes) x window voxels floats. The probability
 * output, when asked for, is the caller's full [classes][nz][ny][nx]. */
#ifndef DLT_INFER_H
#define DLT_INFER_H

#include <stddef.h>
#include <stdint.h>

enum { DLT_BLEND_MEAN = 0, DLT_BLEND_GAUSSIAN = 1 };
/* Padding of windows reaching outside the volume (values as dlt/sample.h's
 * DLT_PAD_*): zero, nearest edge voxel, mirror without repeating the edge. */
enum { DLT_INFER_PAD_ZERO = 0, DLT_INFER_PAD_EDGE = 1, DLT_INFER_PAD_REFLECT = 2 };

/* Probabilities for a batch of windows: x [nb][channels][wz][wy][wx] ->
 * probs [nb][classes][wz][wy][wx] (softmax output; caller's memory).
 * win is X,Y,Z. Returns 0 or a negative DLT_E* with dlt_errmsg set. */
typedef int (*dlt_infer_predict_fn)(void *ctx, const float *x, int64_t nb, const int64_t win[3], float *probs);
/* Progress: windows done of total (may be NULL). */
typedef void (*dlt_infer_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct dlt_infer_config {
    int64_t window[3];   /* X,Y,Z voxels (each >= 1) */
    double overlap;      /* [0, 1): fraction of the window shared by neighbours */
    int blend;           /* DLT_BLEND_* */
    double sigma_frac;   /* Gaussian sigma as a fraction of the window (0.125) */
    int batch;           /* windows per predict call (>= 1); a short last batch
                            after full ones is padded with zero windows (one
                            shape for every call: no new plan or primitives) */
    int flips;           /* mirroring TTA: bit 0 x, bit 1 y, bit 2 z; every
                            subset of these axes is predicted (0: none; 7: 8 passes) */
    int pad;             /* DLT_INFER_PAD_* */
    int channels, classes;
    dlt_infer_predict_fn predict;
    void *predict_ctx;
    dlt_infer_progress_fn progress;
    void *progress_ctx;
} dlt_infer_config;

/* A dlt_infer_predict_fn for a dlt_net (ctx is the dlt_net *): inference
 * mode (running statistics), softmax probabilities. */
int dlt_infer_predict_net(void *net, const float *x, int64_t nb, const int64_t win[3], float *probs);

/* An ensemble (say the k models of a cross-validation) as one predictor:
 * dlt_infer_predict_ensemble (ctx is a dlt_infer_ensemble) averages the
 * members' softmax probabilities (nnU-Net's ensembling); every member has
 * the classes and channels of nets[0]. An ensemble of one model twice gives
 * that model's probabilities exactly ((p + p) / 2 rounds to p). The caller
 * owns nets[]; dlt_infer_ensemble_free frees the scratch only. */
typedef struct dlt_infer_ensemble {
    struct dlt_net **nets;
    int n;
    float *tmp; /* one member's batch of probabilities, grown on demand */
    int64_t tmp_len;
} dlt_infer_ensemble;
int dlt_infer_predict_ensemble(void *ensemble, const float *x, int64_t nb, const int64_t win[3], float *probs);
void dlt_infer_ensemble_free(dlt_infer_ensemble *e);

/* Defaults: overlap 0.5, mean blending, sigma 1/8, batch 1, no flips, zero pad. */
void dlt_infer_config_default(dlt_infer_config *c);

/* Window starts along one axis (see above) into starts[] (may be NULL to
 * count); returns the count. */
int64_t dlt_infer_starts(int64_t n, int64_t p, double overlap, int64_t *starts);

/* Number of predicted windows (placements x mirrorings) for a volume. */
int64_t dlt_infer_count(const dlt_infer_config *c, const int64_t dim[3]);

/* Bytes the accumulator and batch buffers take for a volume (not counting
 * the input, the label output or the optional probabilities). */
int64_t dlt_infer_work_bytes(const dlt_infer_config *c, const int64_t dim[3]);

/* Run: img [channels][nz][ny][nx] (dim = nx,ny,nz) -> label [nz][ny][nx]
 * (may be NULL) and probs [classes][nz][ny][nx] (may be NULL). Checks the
 * configuration (window >= 1, overlap in [0,1), batch >= 1...). */
int dlt_infer_volume(const dlt_infer_config *c, const float *img, const int64_t dim[3], uint16_t *label,
                     float *probs);

/* Back to the original grid after a model saw a resampled one: probs
 * [classes][m] on the grid that dlt_resample_grid(n, spacing, target)
 * made from the original [n] one are interpolated linearly back to it, per
 * class, and label [n] gets the argmax (ties: lowest class); probs_out
 * [classes][n] (may be NULL) the interpolated probabilities. Memory beyond
 * the outputs: two [n] float planes (none for the argmax when probs_out is
 * given). As nnU-Net, which resamples softmax outputs, not labels. */
int dlt_infer_to_grid(const float *probs, int classes, const int64_t m[3], const int64_t n[3],
                      const double spacing[3], const double target[3], uint16_t *label, float *probs_out);

/* Keep, for each class 1..classes-1 (those with only[c] != 0 when only,
 * of `classes` entries, is given), only its largest connected component
 * (connectivity 6: faces, or 26: faces, edges and corners); other voxels of
 * the class become 0 (background). Ties: the component met first in x-fastest
 * scan order. Needs 4 bytes per voxel of scratch. */
int dlt_largest_component(uint16_t *label, const int64_t dim[3], int classes, const uint8_t *only,
                          int connectivity);

/* Compare an input's intensities with what the model's training data had.
 * preprocessing: the model's `preprocessing` key (dlt-normalize's plan text,
 * e.g. "ct=-1000,800;spacing=2,2,2"; NULL or "" if none); stats: the
 * model's `intensity` key (dlt-train: "lo,hi,mean,std" per channel, ';'
 * between channels: the 0.5th/99.5th percentiles, mean and standard
 * deviation of the training patches; NULL if none). img [channels][nvox].
 * Returns 1 and a message in msg when the input looks far off (e.g. raw HU
 * for a model trained on a [0,1] CT window), else 0. */
int dlt_infer_intensity_check(const float *img, int64_t nvox, int channels, const char *preprocessing,
                              const char *stats, char *msg, size_t cap);

/* Intensity statistics of some voxels for the `intensity` key (see above):
 * x [channels][n]; writes "lo,hi,mean,std;..." into buf. Non-finite values
 * are left out. Uses a strided subsample of at most ~1M voxels per channel. */
void dlt_intensity_stats(const float *x, int64_t n, int channels, char *buf, size_t cap);

#endif
