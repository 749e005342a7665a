/* feed.c - the read-ahead thread and bounded queue of dlt/feed.h.
 *
 * One producer (the thread), one consumer. Slots hold dlt_patch buffers that
 * the thread fills with dlt_patch_read; the consumer swaps its own patch
 * with the head slot. The thread ends at the end of the stream or at the
 * first error, which it queues like a record, so the consumer meets it in
 * order. Cancellation is enabled only around the blocking read, so closing
 * while the producer waits for input (a stalled pipe) still returns. */
#include "dlt/feed.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dlt/core.h"

struct dlt_feed {
    dlt_patch_reader r;
    dlt_feed_config c;
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t can_put, can_get;
    dlt_patch *slot;
    int head, count;
    int done;          /* producer finished: end of stream or error */
    int status;        /* 0 end, <0 error */
    char msg[1024];
    int stop;          /* consumer closing */
    int64_t delivered;
};

int dlt_feed_check(const dlt_feed_config *c, const dlt_patch *p, const char *name, int64_t rec)
{
    char where[512];
    snprintf(where, sizeof where, "%s: record %lld (subject '%s', corner %d,%d,%d)", name, (long long)rec, p->id,
             p->corner[0], p->corner[1], p->corner[2]);
    if (p->size[0] != c->patch[0] || p->size[1] != c->patch[1] || p->size[2] != c->patch[2])
        return dlt_err(DLT_ESHAPE, "%s: patch %d,%d,%d, the stream header says %d,%d,%d", where, p->size[0], p->size[1],
                       p->size[2], c->patch[0], c->patch[1], c->patch[2]);
    if ((int)p->channels != c->channels)
        return dlt_err(DLT_ESHAPE, "%s: %u channels, expected %d", where, p->channels, c->channels);
    if (!p->has_label || !p->label) return dlt_err(DLT_EINVAL, "%s: no label (training needs labelled patches)", where);
    int64_t vox = (int64_t)p->size[0] * p->size[1] * p->size[2];
    for (int64_t v = 0; v < vox; v++)
        if (p->label[v] >= c->classes) {
            int64_t x = v % p->size[0], y = (v / p->size[0]) % p->size[1], z = v / ((int64_t)p->size[0] * p->size[1]);
            return dlt_err(DLT_EINVAL, "%s: label %u at voxel %lld,%lld,%lld is not below the class count %d", where,
                           p->label[v], (long long)x, (long long)y, (long long)z, c->classes);
        }
    for (int64_t v = 0; v < vox * (int64_t)p->channels; v++)
        if (!isfinite(p->image[v])) {
            int64_t ch = v / vox, u = v % vox;
            int64_t x = u % p->size[0], y = (u / p->size[0]) % p->size[1], z = u / ((int64_t)p->size[0] * p->size[1]);
            return dlt_err(DLT_EINVAL, "%s: image value %g in channel %lld at voxel %lld,%lld,%lld", where,
                           (double)p->image[v], (long long)ch, (long long)x, (long long)y, (long long)z);
        }
    return 0;
}

static void *producer(void *arg)
{
    dlt_feed *f = arg;
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (f->count == f->c.capacity && !f->stop) pthread_cond_wait(&f->can_put, &f->mu);
        if (f->stop) {
            pthread_mutex_unlock(&f->mu);
            return NULL;
        }
        dlt_patch *p = &f->slot[(f->head + f->count) % f->c.capacity];
        pthread_mutex_unlock(&f->mu);

        int64_t rec = f->r.record;
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
        int rc = dlt_patch_read(&f->r, p);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
        if (rc == 1) rc = dlt_feed_check(&f->c, p, f->r.name, rec);
        else if (rc == 0) rc = 1; /* end */

        pthread_mutex_lock(&f->mu);
        if (rc == 0) {
            f->count++;
        } else {
            f->done = 1;
            f->status = rc == 1 ? 0 : rc;
            if (rc < 0) snprintf(f->msg, sizeof f->msg, "%s", dlt_errmsg());
        }
        pthread_cond_signal(&f->can_get);
        pthread_mutex_unlock(&f->mu);
        if (rc != 0) return NULL;
    }
}

int dlt_feed_start(dlt_patch_reader *r, const dlt_feed_config *c, dlt_feed **out)
{
    *out = NULL;
    if (c->capacity < 1 || c->channels < 1 || c->classes < 1)
        return dlt_err(DLT_EINVAL, "feed: capacity, channels and classes must be >= 1");
    dlt_feed *f = dlt_calloc(1, sizeof *f, "feed");
    if (!f) return DLT_ENOMEM;
    f->r = *r;
    f->c = *c;
    f->slot = dlt_calloc(c->capacity, sizeof(dlt_patch), "feed queue");
    if (!f->slot) {
        dlt_free(f);
        return DLT_ENOMEM;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->can_put, NULL);
    pthread_cond_init(&f->can_get, NULL);
    /* Signals belong to the main thread (dlt-train's SIGTERM handling). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(&f->th, NULL, producer, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        dlt_free(f->slot);
        dlt_free(f);
        return dlt_err(DLT_EIO, "feed: cannot start the reader thread: %s", strerror(e));
    }
    f->started = 1;
    *out = f;
    return 0;
}

int dlt_feed_next(dlt_feed *f, dlt_patch *p, volatile sig_atomic_t *stop)
{
    pthread_mutex_lock(&f->mu);
    while (f->count == 0 && !f->done) {
        if (stop && *stop) {
            pthread_mutex_unlock(&f->mu);
            return DLT_FEED_STOPPED;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&f->can_get, &f->mu, &ts);
    }
    int rc;
    if (f->count > 0) {
        dlt_patch tmp = f->slot[f->head];
        f->slot[f->head] = *p;
        *p = tmp;
        f->head = (f->head + 1) % f->c.capacity;
        f->count--;
        f->delivered++;
        pthread_cond_signal(&f->can_put);
        rc = 1;
    } else {
        rc = f->status;
        if (rc < 0) dlt_err(rc, "%s", f->msg);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int64_t dlt_feed_delivered(const dlt_feed *f) { return f->delivered; }

void dlt_feed_close(dlt_feed *f)
{
    if (!f) return;
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        f->stop = 1;
        int done = f->done;
        pthread_cond_broadcast(&f->can_put);
        pthread_mutex_unlock(&f->mu);
        if (!done) pthread_cancel(f->th);
        pthread_join(f->th, NULL);
    }
    for (int i = 0; i < f->c.capacity; i++) dlt_patch_free(&f->slot[i]);
    dlt_free(f->slot);
    dlt_patch_reader_close(&f->r);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->can_put);
    pthread_cond_destroy(&f->can_get);
    dlt_free(f);
}
