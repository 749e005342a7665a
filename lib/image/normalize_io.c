/* normalize_io.c - look at the first bytes of an input (path or stdin)
 * without consuming them, so a tool can tell a volume from a patch stream
 * and then hand "-" to whichever reader fits (dlt/normalize.h). */
#include "dlt/core.h"
#include "dlt/normalize.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct relay {
    int from, to;
    uint8_t *head;
    int64_t nhead;
};

static int write_full(int fd, const uint8_t *p, int64_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= w;
    }
    return 0;
}

/* Copies the peeked head, then the rest of the original stdin, into the pipe
 * that now sits on fd 0. fd 0 keeps the read end open until the process
 * exits, so a reader that stops early just leaves this thread blocked. */
static void *relay_main(void *arg)
{
    struct relay *r = arg;
    uint8_t buf[1 << 16];
    if (write_full(r->to, r->head, r->nhead) == 0)
        for (;;) {
            ssize_t n = read(r->from, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0 || write_full(r->to, buf, n) != 0) break;
        }
    close(r->to);
    close(r->from);
    free(r->head);
    free(r);
    return NULL;
}

int dlt_peek_input(const char *path, void *buf, int64_t cap, int64_t *got)
{
    *got = 0;
    if (strcmp(path, "-") != 0) {
        FILE *f = fopen(path, "rb");
        if (!f) return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));
        size_t n = fread(buf, 1, (size_t)cap, f);
        int bad = ferror(f);
        fclose(f);
        if (bad) return dlt_err(DLT_EIO, "%s: read failed", path);
        *got = (int64_t)n;
        return 0;
    }
    /* stdin: read with read(2), never through stdio, so nothing stays
     * buffered in `stdin` that the pipe would not carry. */
    int64_t n = 0;
    while (n < cap) {
        ssize_t r = read(0, (uint8_t *)buf + n, (size_t)(cap - n));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return dlt_err(DLT_EIO, "stdin: read failed: %s", strerror(errno));
        if (r == 0) break;
        n += r;
    }
    *got = n;
    if (n == 0) return 0;
    /* A seekable stdin (a redirected file) just rewinds. */
    if (lseek(0, -n, SEEK_CUR) >= 0) return 0;
    int p[2];
    if (pipe(p) != 0) return dlt_err(DLT_EIO, "stdin: pipe: %s", strerror(errno));
    struct relay *r = malloc(sizeof *r);
    int orig = dup(0);
    if (!r || orig < 0) {
        free(r);
        close(p[0]);
        close(p[1]);
        return dlt_err(DLT_EIO, "stdin: cannot relay input");
    }
    r->from = orig;
    r->to = p[1];
    r->nhead = n;
    r->head = malloc((size_t)n);
    if (!r->head) {
        free(r);
        return dlt_err(DLT_ENOMEM, "out of memory");
    }
    memcpy(r->head, buf, (size_t)n);
    if (dup2(p[0], 0) < 0) return dlt_err(DLT_EIO, "stdin: dup2: %s", strerror(errno));
    close(p[0]);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&th, &at, relay_main, r);
    pthread_attr_destroy(&at);
    if (e) return dlt_err(DLT_EIO, "stdin: cannot start relay thread: %s", strerror(e));
    return 0;
}
