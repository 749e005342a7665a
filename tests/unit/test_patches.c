/* test_patches.c - the patch stream (dlt/patches.h): round trips with and
 * without labels, several channels and negative corners; truncation at every
 * byte offset of a small stream, each detected and naming its record; a
 * flipped byte in every region caught; absurd sizes refused before any big
 * allocation; concatenated streams (`cat a b`). */
#include "check.h"
#include "dlt/core.h"
#include "dlt/patches.h"

#include <stdlib.h>
#include <string.h>

/* A stream in memory: header + n records, record i with i+1 channels when
 * `vary` is 0... kept simple: all records share channels/size. */
static char *make_stream(int n, int channels, int has_label, size_t *len, const char *seedval)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    dlt_patch_header h = {0};
    char cs[16];
    snprintf(cs, sizeof cs, "%d", channels);
    dlt_patch_header_set(&h, "channels", cs);
    dlt_patch_header_set(&h, "classes", "3");
    dlt_patch_header_set(&h, "patch", "4,3,2");
    dlt_patch_header_set(&h, "label", has_label ? "yes" : "no");
    dlt_patch_header_set(&h, "class_names", "background,liver,spleen");
    dlt_patch_header_set(&h, "seed", seedval);
    dlt_patch_write_header(f, &h);
    dlt_patch_header_free(&h);
    for (int r = 0; r < n; r++) {
        dlt_patch p = {0};
        snprintf(p.id, sizeof p.id, "subject-%02d", r);
        p.corner[0] = -1 - r;
        p.corner[1] = 5;
        p.corner[2] = -3;
        p.size[0] = 4;
        p.size[1] = 3;
        p.size[2] = 2;
        p.channels = (uint32_t)channels;
        p.image = malloc(sizeof(float) * 24 * channels);
        for (int i = 0; i < 24 * channels; i++) p.image[i] = (float)(r * 1000 + i) * 0.25f - 7.0f;
        p.has_label = has_label;
        if (has_label) {
            p.label = malloc(sizeof(uint16_t) * 24);
            for (int i = 0; i < 24; i++) p.label[i] = (uint16_t)((i + r) % 3);
        }
        dlt_patch_write(f, &p);
        free(p.image);
        free(p.label);
    }
    fclose(f);
    return buf;
}

/* Read all records; returns count read, or the error code; checks values. */
static int read_all(const char *buf, size_t len, int *values_ok, char *msg, size_t msgsz)
{
    dlt_patch_reader r;
    int rc = dlt_patch_reader_mem(&r, buf, (int64_t)len, "mem");
    if (rc) {
        snprintf(msg, msgsz, "%s", dlt_errmsg());
        return rc;
    }
    dlt_patch p = {0};
    int n = 0, ok = 1;
    while ((rc = dlt_patch_read(&r, &p)) == 1) {
        char id[32];
        snprintf(id, sizeof id, "subject-%02d", n);
        ok &= strcmp(p.id, id) == 0 && p.corner[0] == -1 - n && p.corner[1] == 5 && p.corner[2] == -3;
        ok &= p.size[0] == 4 && p.size[1] == 3 && p.size[2] == 2;
        for (uint32_t i = 0; i < 24 * p.channels; i++) ok &= p.image[i] == (float)(n * 1000 + (int)i) * 0.25f - 7.0f;
        if (p.has_label)
            for (int i = 0; i < 24; i++) ok &= p.label[i] == (uint16_t)((i + n) % 3);
        n++;
    }
    if (values_ok) *values_ok = ok;
    if (rc < 0) snprintf(msg, msgsz, "%s", dlt_errmsg());
    dlt_patch_free(&p);
    dlt_patch_reader_close(&r);
    return rc < 0 ? rc : n;
}

int main(void)
{
    char msg[1024];
    size_t len;
    int ok;

    /* round trips */
    for (int lab = 0; lab < 2; lab++)
        for (int ch = 1; ch <= 3; ch += 2) {
            char *s = make_stream(5, ch, lab, &len, "1");
            int n = read_all(s, len, &ok, msg, sizeof msg);
            CHECK(n == 5 && ok, "round trip: %d channels, label %d (n=%d)", ch, lab, n);
            free(s);
        }
    {
        char *s = make_stream(2, 2, 1, &len, "1");
        dlt_patch_reader r;
        dlt_patch_reader_mem(&r, s, (int64_t)len, "mem");
        CHECK(strcmp(dlt_patch_header_get(&r.header, "class_names"), "background,liver,spleen") == 0 &&
                  strcmp(dlt_patch_header_get(&r.header, "patch"), "4,3,2") == 0 &&
                  dlt_patch_header_get(&r.header, "nothing") == NULL,
              "header keys read back");
        CHECK(dlt_patch_is_stream(s, (int64_t)len) && !dlt_patch_is_stream("PREC", 4), "is_stream");
        dlt_patch_reader_close(&r);
        free(s);
    }
    {
        char *s = make_stream(0, 1, 1, &len, "1");
        CHECK(read_all(s, len, &ok, msg, sizeof msg) == 0, "header only: zero records, clean end");
        free(s);
    }

    /* truncation at every byte: each detected, naming the right record */
    {
        char *s = make_stream(3, 2, 1, &len, "1");
        size_t hdr = strstr(s, "end\n") - s + 4;
        size_t rec = (len - hdr) / 3;
        int all = 1, named = 1, clean = 1;
        for (size_t cut = 1; cut < len; cut++) {
            int n = read_all(s, cut, NULL, msg, sizeof msg);
            int boundary = cut >= hdr && (cut - hdr) % rec == 0;
            if (boundary) {
                clean &= n == (int)((cut - hdr) / rec);
                continue;
            }
            all &= n < 0;
            if (cut > hdr) {
                char want[128];
                size_t k = (cut - hdr) / rec;
                snprintf(want, sizeof want, "mem: record %zu at byte %zu: truncated", k, hdr + k * rec);
                if (!strstr(msg, want)) {
                    if (named) printf("# cut %zu: '%s' lacks '%s'\n", cut, msg, want);
                    named = 0;
                }
            }
        }
        CHECK(all, "truncation at each of %zu offsets detected", len - 1);
        CHECK(named, "truncation messages name record and byte offset");
        CHECK(clean, "a cut at a record boundary is a clean shorter stream");

        /* a flipped byte anywhere in a record: detected (CRC or a size check) */
        int det = 1, crcnamed = 1;
        for (size_t i = hdr; i < len; i++) {
            char *c = malloc(len);
            memcpy(c, s, len);
            c[i] ^= 0x10;
            int n = read_all(c, len, NULL, msg, sizeof msg);
            if (n >= 0) {
                printf("# flip at %zu undetected\n", i);
                det = 0;
            }
            /* payload bytes (past the 8-byte magic+length and the size prefix) fail the crc */
            size_t off = (i - hdr) % rec;
            if (off >= 8 + 2 + 10 + 28 && off < rec - 4 - 1 - 48 && !strstr(msg, "crc mismatch")) {
                printf("# flip at %zu: '%s'\n", i, msg);
                crcnamed = 0;
            }
            free(c);
        }
        CHECK(det, "a flipped byte in every position of every record is detected");
        CHECK(crcnamed, "flipped payload bytes give 'crc mismatch'");
        /* flipped bytes in the id, the corner, the label and the crc itself */
        size_t where[] = {10, 12, 20, 22, rec - 6, rec - 2};
        int cr = 1;
        for (int j = 0; j < 6; j++) {
            char *c = malloc(len);
            memcpy(c, s, len);
            c[hdr + rec + where[j]] ^= 1;
            read_all(c, len, NULL, msg, sizeof msg);
            char want[128];
            snprintf(want, sizeof want, "mem: record 1 at byte %zu: crc mismatch", hdr + rec);
            if (!strstr(msg, want)) {
                printf("# region %d: '%s'\n", j, msg);
                cr = 0;
            }
            free(c);
        }
        CHECK(cr, "flip in id, corner, image, label, crc: 'record 1 at byte N: crc mismatch'");
        free(s);
    }

    /* absurd sizes refused without a huge allocation */
    {
        char *s = make_stream(1, 1, 0, &len, "1");
        size_t hdr = strstr(s, "end\n") - s + 4;
        uint8_t *r0 = (uint8_t *)s + hdr;
        char *c = malloc(len);
        /* length field 0xffffffff */
        memcpy(c, s, len);
        memset(c + hdr + 4, 0xff, 4);
        int n = read_all(c, len, NULL, msg, sizeof msg);
        CHECK(n == DLT_ENOMEM && strstr(msg, "exceeds"), "record length 4 GiB refused: %s", msg);
        /* size 4096^3: exceeds caps before allocation */
        memcpy(c, s, len);
        size_t sz = hdr + 10 + (size_t)(r0[8] | r0[9] << 8) + 12;
        for (int k = 0; k < 3; k++) {
            uint32_t v = 100000;
            memcpy(c + sz + 4 * k, &v, 4);
        }
        n = read_all(c, len, NULL, msg, sizeof msg);
        CHECK(n == DLT_EFORMAT && strstr(msg, "out of range"), "patch size 100000^3 refused: %s", msg);
        /* sizes consistent with a large claimed length but the data missing */
        memcpy(c, s, len);
        for (int k = 0; k < 3; k++) {
            uint32_t v = 512;
            memcpy(c + sz + 4 * k, &v, 4);
        }
        uint32_t L = (uint32_t)(2 + 10 + 12 + 12 + 4 + 1 + 4 + 4u * 512 * 512 * 512);
        memcpy(c + hdr + 4, &L, 4);
        setenv("DLT_MAX_ALLOC", "64M", 1);
        n = read_all(c, len, NULL, msg, sizeof msg);
        CHECK(n == DLT_ENOMEM || n == DLT_ETRUNC, "512^3 record under a 64 MiB cap: refused (%s)", msg);
        unsetenv("DLT_MAX_ALLOC");
        /* channel count absurd */
        memcpy(c, s, len);
        uint32_t big = 1u << 30;
        memcpy(c + sz + 12, &big, 4);
        n = read_all(c, len, NULL, msg, sizeof msg);
        CHECK(n == DLT_EFORMAT && strstr(msg, "channel count"), "channel count 2^30 refused: %s", msg);
        free(c);
        free(s);
    }

    /* concatenated streams */
    {
        size_t la, lb;
        char *a = make_stream(2, 1, 1, &la, "1"), *b = make_stream(3, 1, 1, &lb, "1");
        char *ab = malloc(la + lb);
        memcpy(ab, a, la);
        memcpy(ab + la, b, lb);
        dlt_patch_reader r;
        dlt_patch_reader_mem(&r, ab, (int64_t)(la + lb), "cat");
        dlt_patch p = {0};
        int n = 0, rc;
        while ((rc = dlt_patch_read(&r, &p)) == 1) n++;
        CHECK(rc == 0 && n == 5, "identical header between records accepted (5 records)");
        dlt_patch_free(&p);
        dlt_patch_reader_close(&r);
        free(b);
        b = make_stream(3, 1, 1, &lb, "2");
        ab = realloc(ab, la + lb);
        memcpy(ab + la, b, lb);
        n = read_all(ab, la + lb, NULL, msg, sizeof msg);
        CHECK(n == DLT_EFORMAT && strstr(msg, "different header"), "a different header mid-stream refused: %s", msg);
        /* a truncated second header */
        n = read_all(ab, la + 7, NULL, msg, sizeof msg);
        CHECK(n == DLT_ETRUNC, "truncated second header: %s", msg);
        free(a);
        free(b);
        free(ab);
    }

    /* not a stream, bad header values */
    {
        const char *bad[] = {"hello world\n", "DLTPATCHES 2\nend\n", "DLTPATCHES 1\npatch 0,4,4\nend\n",
                             "DLTPATCHES 1\nlabel maybe\nend\n", "DLTPATCHES 1\nseed 1\nseed 2\nend\n",
                             "DLTPATCHES 1\nseed 1\n"};
        int codes[] = {DLT_EFORMAT, DLT_EUNSUP, DLT_EFORMAT, DLT_EFORMAT, DLT_EFORMAT, DLT_ETRUNC};
        for (int i = 0; i < 6; i++) {
            int n = read_all(bad[i], strlen(bad[i]), NULL, msg, sizeof msg);
            CHECK(n == codes[i], "bad header %d refused (%d): %s", i, n, msg);
        }
    }
    /* a record that disagrees with its header */
    {
        char *s = make_stream(1, 1, 1, &len, "1");
        char *h = strstr(s, "channels 1");
        h[9] = '2';
        int n = read_all(s, len, NULL, msg, sizeof msg);
        CHECK(n == DLT_EFORMAT && strstr(msg, "record 0") && strstr(msg, "header says"), "record vs header: %s", msg);
        free(s);
    }
    /* writer refuses bad input */
    {
        dlt_patch_header h = {0};
        CHECK(dlt_patch_header_set(&h, "bad key", "x") == DLT_EINVAL, "key with a space refused");
        CHECK(dlt_patch_header_set(&h, "k", "a\nb") == DLT_EINVAL, "value with a newline refused");
        dlt_patch_header_set(&h, "k", "1");
        dlt_patch_header_set(&h, "k", "2");
        CHECK(h.nkeys == 1 && strcmp(dlt_patch_header_get(&h, "k"), "2") == 0, "set replaces");
        dlt_patch_header_free(&h);
        dlt_patch p = {0};
        p.size[0] = 0;
        p.channels = 1;
        CHECK(dlt_patch_write(stdout, &p) == DLT_EINVAL, "writer refuses a zero size");
    }
    return check_done();
}
