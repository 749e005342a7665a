/* test_feed.c - the read-ahead feed (dlt/feed.h): records arrive in order
 * through a small queue; a NaN image value, a label over the class count
 * and a wrong channel count are refused at their record, after the good
 * records before them; a stop flag ends a wait on a stalled pipe, and
 * closing returns while the thread is blocked reading. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/feed.h"
#include "dlt/patches.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* n records of 3x2x2, 1 channel, classes 3; record `bad` gets defect `kind`
 * (1: NaN image value, 2: label 3). */
static char *make_stream(int n, int bad, int kind, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    dlt_patch_header h = {0};
    dlt_patch_header_set(&h, "channels", "1");
    dlt_patch_header_set(&h, "classes", "3");
    dlt_patch_header_set(&h, "patch", "3,2,2");
    dlt_patch_header_set(&h, "label", "yes");
    dlt_patch_write_header(f, &h);
    dlt_patch_header_free(&h);
    float img[12];
    uint16_t lab[12];
    for (int r = 0; r < n; r++) {
        dlt_patch p = {0};
        snprintf(p.id, sizeof p.id, "s%02d", r);
        p.corner[0] = r;
        p.size[0] = 3, p.size[1] = 2, p.size[2] = 2;
        p.channels = 1;
        for (int v = 0; v < 12; v++) img[v] = (float)(r * 100 + v), lab[v] = (uint16_t)(v % 3);
        if (r == bad && kind == 1) img[7] = NAN;
        if (r == bad && kind == 2) lab[5] = 3;
        p.image = img;
        p.has_label = 1;
        p.label = lab;
        dlt_patch_write(f, &p);
    }
    fclose(f);
    return buf;
}

static dlt_feed_config cfg(void)
{
    dlt_feed_config c = {.channels = 1, .classes = 3, .patch = {3, 2, 2}, .capacity = 2};
    return c;
}

int main(void)
{
    dlt_log_init("test_feed");
    size_t len;
    char *s = make_stream(7, -1, 0, &len);
    dlt_patch_reader r;
    dlt_feed *f;
    dlt_feed_config c = cfg();
    CHECK(dlt_patch_reader_mem(&r, s, (int64_t)len, "mem") == 0 && dlt_feed_start(&r, &c, &f) == 0, "feed starts");
    dlt_patch p = {0};
    int ok = 1, n = 0, rc;
    while ((rc = dlt_feed_next(f, &p, NULL)) == 1) {
        if (p.image[0] != (float)(n * 100) || strcmp(p.id, (char[8]){'s', '0', (char)('0' + n), 0})) ok = 0;
        n++;
    }
    CHECK(rc == 0 && n == 7 && ok && dlt_feed_delivered(f) == 7, "7 records in order through a queue of 2, then end");
    dlt_feed_close(f);
    free(s);

    for (int kind = 1; kind <= 2; kind++) {
        s = make_stream(6, 3, kind, &len);
        dlt_patch_reader_mem(&r, s, (int64_t)len, "mem");
        dlt_feed_start(&r, &c, &f);
        n = 0;
        while ((rc = dlt_feed_next(f, &p, NULL)) == 1) n++;
        const char *want = kind == 1 ? "image value nan in channel 0 at voxel 1,0,1" : "label 3 at voxel 2,1,0";
        CHECK(rc == DLT_EINVAL && n == 3 && strstr(dlt_errmsg(), "record 3 (subject 's03'") && strstr(dlt_errmsg(), want),
              "%s refused at its record after 3 good ones: %s", kind == 1 ? "NaN" : "label >= classes", dlt_errmsg());
        dlt_feed_close(f);
        free(s);
    }

    s = make_stream(2, -1, 0, &len);
    dlt_patch_reader_mem(&r, s, (int64_t)len, "mem");
    c.channels = 2;
    dlt_feed_start(&r, &c, &f);
    rc = dlt_feed_next(f, &p, NULL);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "1 channels, expected 2"), "channel mismatch: %s", dlt_errmsg());
    dlt_feed_close(f);
    c = cfg();
    c.patch[2] = 3;
    dlt_patch_reader_mem(&r, s, (int64_t)len, "mem");
    dlt_feed_start(&r, &c, &f);
    rc = dlt_feed_next(f, &p, NULL);
    CHECK(rc == DLT_ESHAPE && strstr(dlt_errmsg(), "patch 3,2,2"), "patch size mismatch: %s", dlt_errmsg());
    dlt_feed_close(f);

    /* a stalled pipe: header and one record, the writer stays open */
    int fd[2];
    if (pipe(fd) == 0) {
        char *hdr_end = strstr(s, "end\n") + 4;
        size_t one = (size_t)(hdr_end - s) + (len - (size_t)(hdr_end - s)) / 2;
        if (write(fd[1], s, one) != (ssize_t)one) return 1;
        FILE *in = fdopen(fd[0], "rb");
        CHECK(dlt_patch_reader_fopen(&r, in, "pipe") == 0, "reader on a pipe");
        c = cfg();
        dlt_feed_start(&r, &c, &f);
        volatile sig_atomic_t stop = 0;
        rc = dlt_feed_next(f, &p, &stop);
        CHECK(rc == 1, "first record from the pipe");
        stop = 1;
        double t0 = dlt_now();
        rc = dlt_feed_next(f, &p, &stop);
        CHECK(rc == DLT_FEED_STOPPED && dlt_now() - t0 < 1.0, "stop flag ends the wait on a stalled pipe");
        dlt_feed_close(f);
        CHECK(1, "close returns while the reader thread is blocked");
        close(fd[1]);
    }
    free(s);
    dlt_patch_free(&p);
    return check_done();
}
