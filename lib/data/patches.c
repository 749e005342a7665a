/* patches.c - the patch stream (dlt/patches.h, dlt-patches(5)): a text
 * header, then self-checking binary records that concatenate.
 *
 * The reader is strictly sequential (it works on pipes): it reads a record's
 * fixed prefix, checks every size against the record length and against caps
 * before allocating, then reads the payload straight into the patch buffers
 * while the CRC runs over the raw bytes. Every error names the stream, the
 * record number (0-based) and the byte offset where that record starts. */
#include "dlt/patches.h"
#include "dlt/core.h"
#include "dlt/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_LINE "DLTPATCHES 1\n"
#define HEADER_MAX_LINE 65536
/* Caps that make a lying record fail before any big allocation: a patch side
 * of 4096 voxels, 4096 channels, and 2 GiB per record (a 512^3 single-channel
 * patch with labels takes 768 MiB). */
#define MAX_SIDE 4096
#define MAX_CHANNELS 4096
#define MAX_RECORD ((int64_t)2 << 30)
/* Bytes of a record that do not depend on the sizes: id length, corner,
 * size, channels, has_label, crc. */
#define FIXED_BYTES (2 + 12 + 12 + 4 + 1 + 4)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_BE 1
#else
#define HOST_BE 0
#endif

/* ---- header ---- */

const char *dlt_patch_header_get(const dlt_patch_header *h, const char *key)
{
    for (int i = 0; i < h->nkeys; i++)
        if (strcmp(h->key[i], key) == 0) return h->value[i];
    return NULL;
}

static int valid_key(const char *k)
{
    if (!*k) return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return 0;
    return strcmp(k, "end") != 0;
}

int dlt_patch_header_set(dlt_patch_header *h, const char *key, const char *value)
{
    if (!valid_key(key)) return dlt_err(DLT_EINVAL, "patch header: invalid key '%s'", key);
    if (strchr(value, '\n') || strchr(value, '\r'))
        return dlt_err(DLT_EINVAL, "patch header: value of '%s' contains a newline", key);
    for (int i = 0; i < h->nkeys; i++)
        if (strcmp(h->key[i], key) == 0) {
            char *v = strdup(value);
            if (!v) return dlt_err(DLT_ENOMEM, "out of memory");
            free(h->value[i]);
            h->value[i] = v;
            return 0;
        }
    if (h->nkeys >= DLT_PATCHES_MAX_KEYS)
        return dlt_err(DLT_EINVAL, "patch header: more than %d keys", DLT_PATCHES_MAX_KEYS);
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return dlt_err(DLT_ENOMEM, "out of memory");
    }
    h->key[h->nkeys] = k;
    h->value[h->nkeys] = v;
    h->nkeys++;
    return 0;
}

void dlt_patch_header_free(dlt_patch_header *h)
{
    for (int i = 0; i < h->nkeys; i++) {
        free(h->key[i]);
        free(h->value[i]);
    }
    memset(h, 0, sizeof *h);
}

static int headers_equal(const dlt_patch_header *a, const dlt_patch_header *b)
{
    if (a->nkeys != b->nkeys) return 0;
    for (int i = 0; i < a->nkeys; i++)
        if (strcmp(a->key[i], b->key[i]) || strcmp(a->value[i], b->value[i])) return 0;
    return 1;
}

int dlt_patch_is_stream(const void *buf, int64_t n)
{
    static const char m[] = "DLTPATCHES ";
    return n >= (int64_t)sizeof m - 1 && memcmp(buf, m, sizeof m - 1) == 0;
}

/* ---- reading ---- */

/* Read exactly n bytes; returns the count actually read. */
static size_t read_n(dlt_patch_reader *r, void *buf, size_t n)
{
    size_t got = n ? fread(buf, 1, n, r->f) : 0;
    r->offset += (int64_t)got;
    return got;
}

/* One header line (without its newline) into line[HEADER_MAX_LINE]. */
static int read_line(dlt_patch_reader *r, char *line, int64_t at)
{
    size_t n = 0;
    for (;;) {
        int c = getc(r->f);
        if (c == EOF) return dlt_err(DLT_ETRUNC, "%s: byte %lld: header ends early (no 'end' line)", r->name, (long long)at);
        r->offset++;
        if (c == '\n') break;
        if (c == 0) return dlt_err(DLT_EFORMAT, "%s: byte %lld: NUL byte in the header", r->name, (long long)at);
        if (n + 1 >= HEADER_MAX_LINE)
            return dlt_err(DLT_EFORMAT, "%s: byte %lld: header line longer than %d bytes", r->name, (long long)at,
                           HEADER_MAX_LINE);
        line[n++] = (char)c;
    }
    if (n && line[n - 1] == '\r') n--;
    line[n] = 0;
    return 0;
}

/* Check the values of the keys the reader relies on. */
static int check_header(dlt_patch_reader *r, const dlt_patch_header *h)
{
    const char *v;
    int p[3];
    if ((v = dlt_patch_header_get(h, "patch")) && dlt_parse_int3(v, 1, MAX_SIDE, p))
        return dlt_err(DLT_EFORMAT, "%s: header: bad patch size '%s' (expected X,Y,Z in 1..%d)", r->name, v, MAX_SIDE);
    if ((v = dlt_patch_header_get(h, "channels"))) {
        char *end;
        long c = strtol(v, &end, 10);
        if (end == v || *end || c < 1 || c > MAX_CHANNELS)
            return dlt_err(DLT_EFORMAT, "%s: header: bad channel count '%s'", r->name, v);
    }
    if ((v = dlt_patch_header_get(h, "label")) && strcmp(v, "yes") && strcmp(v, "no"))
        return dlt_err(DLT_EFORMAT, "%s: header: label must be yes or no, not '%s'", r->name, v);
    return 0;
}

/* Read the header after its first `have` bytes (already read, equal to the
 * start of the magic line) into h. */
static int read_header(dlt_patch_reader *r, dlt_patch_header *h, const char *have, size_t nhave)
{
    int64_t start = r->offset - (int64_t)nhave;
    char *line = malloc(HEADER_MAX_LINE);
    if (!line) return dlt_err(DLT_ENOMEM, "out of memory");
    memset(h, 0, sizeof *h);
    size_t ml = strlen(MAGIC_LINE);
    char magic[32];
    memcpy(magic, have, nhave);
    size_t got = read_n(r, magic + nhave, ml - nhave);
    int rc = 0;
    if (nhave + got < ml || memcmp(magic, MAGIC_LINE, ml) != 0) {
        if (nhave + got >= 11 && memcmp(magic, "DLTPATCHES ", 11) == 0)
            rc = dlt_err(DLT_EUNSUP, "%s: byte %lld: unsupported patch stream version", r->name, (long long)start);
        else if (nhave + got < ml && memcmp(magic, MAGIC_LINE, nhave + got) == 0)
            rc = dlt_err(DLT_ETRUNC, "%s: byte %lld: header ends early", r->name, (long long)start);
        else
            rc = dlt_err(DLT_EFORMAT, "%s: not a dlt patch stream (no DLTPATCHES 1 line)", r->name);
        goto out;
    }
    for (;;) {
        int64_t at = r->offset;
        if ((rc = read_line(r, line, at))) goto out;
        if (strcmp(line, "end") == 0) break;
        if (line[0] == '#' || line[0] == 0) continue;
        char *sp = strchr(line, ' ');
        const char *val = "";
        if (sp) {
            *sp = 0;
            val = sp + 1;
        }
        if (!valid_key(line)) {
            rc = dlt_err(DLT_EFORMAT, "%s: byte %lld: bad header line (key '%.40s')", r->name, (long long)at, line);
            goto out;
        }
        if (dlt_patch_header_get(h, line)) {
            rc = dlt_err(DLT_EFORMAT, "%s: byte %lld: header key '%s' repeated", r->name, (long long)at, line);
            goto out;
        }
        if ((rc = dlt_patch_header_set(h, line, val))) {
            dlt_err_prefix(rc, "%s: byte %lld", r->name, (long long)at);
            goto out;
        }
    }
    rc = check_header(r, h);
out:
    free(line);
    if (rc) dlt_patch_header_free(h);
    return rc;
}

int dlt_patch_reader_fopen(dlt_patch_reader *r, FILE *f, const char *name)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->name = name;
    return read_header(r, &r->header, "", 0);
}

int dlt_patch_reader_open(dlt_patch_reader *r, const char *path)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return dlt_err(DLT_EIO, "%s: %s", path, strerror(errno));
    int rc = dlt_patch_reader_fopen(r, f, is_stdin ? "stdin" : path);
    if (rc) {
        if (!is_stdin) fclose(f);
        memset(r, 0, sizeof *r);
        return rc;
    }
    r->owns_file = !is_stdin;
    return 0;
}

int dlt_patch_reader_mem(dlt_patch_reader *r, const void *buf, int64_t n, const char *name)
{
    /* fmemopen refuses size 0 on some libcs; an empty buffer is simply not a stream. */
    if (n <= 0) return dlt_err(DLT_EFORMAT, "%s: empty input", name);
    FILE *f = fmemopen((void *)buf, (size_t)n, "rb");
    if (!f) return dlt_err(DLT_EIO, "%s: %s", name, strerror(errno));
    int rc = dlt_patch_reader_fopen(r, f, name);
    if (rc) {
        fclose(f);
        memset(r, 0, sizeof *r);
        return rc;
    }
    r->owns_file = 1;
    return 0;
}

void dlt_patch_reader_close(dlt_patch_reader *r)
{
    if (r->owns_file && r->f) fclose(r->f);
    dlt_patch_header_free(&r->header);
    memset(r, 0, sizeof *r);
}

void dlt_patch_free(dlt_patch *p)
{
    dlt_free(p->image);
    dlt_free(p->label);
    memset(p, 0, sizeof *p);
}

static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }
static uint32_t get32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *b, uint32_t v) { b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)(v >> 16); b[3] = (uint8_t)(v >> 24); }

static void swap_elems(void *buf, int64_t n, int size)
{
    uint8_t *b = buf;
    for (int64_t i = 0; i < n; i++, b += size)
        for (int j = 0; j < size / 2; j++) {
            uint8_t t = b[j];
            b[j] = b[size - 1 - j];
            b[size - 1 - j] = t;
        }
}

#define REC_ERR(code, ...) rec_err(r, rec, at, code, __VA_ARGS__)
static int rec_err(dlt_patch_reader *r, int64_t rec, int64_t at, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int rec_err(dlt_patch_reader *r, int64_t rec, int64_t at, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dlt_err(code, "%s: record %lld at byte %lld: %s", r->name, (long long)rec, (long long)at, msg);
}

/* Payload read into p's buffers with the CRC running; `what` names the part. */
static int read_part(dlt_patch_reader *r, int64_t rec, int64_t at, void *dst, int64_t n, uint32_t *crc, int64_t *done,
                     int64_t total, const char *what)
{
    size_t got = read_n(r, dst, (size_t)n);
    *crc = dlt_crc32(*crc, dst, got);
    *done += (int64_t)got;
    if ((int64_t)got < n)
        return REC_ERR(DLT_ETRUNC, "truncated in the %s (stream ends after %lld of %lld bytes)", what, (long long)*done,
                       (long long)total);
    return 0;
}

int dlt_patch_read(dlt_patch_reader *r, dlt_patch *p)
{
    uint8_t pre[8 + 2 + 255 + 28];
    int64_t rec, at;
again:
    rec = r->record;
    at = r->offset;
    size_t got = read_n(r, pre, 4);
    if (got == 0) {
        if (ferror(r->f)) return REC_ERR(DLT_EIO, "read failed: %s", strerror(errno));
        return 0;
    }
    if (got >= 1 && pre[0] == 'D' && (got < 4 || memcmp(pre, "DLTP", 4) == 0)) {
        /* A header between records: `cat a b` of two streams. Accept it when
         * it is the same header; a different one would mix incompatible data. */
        dlt_patch_header h2;
        int rc = read_header(r, &h2, (const char *)pre, got);
        if (rc) {
            char m[1024];
            snprintf(m, sizeof m, "%s", dlt_errmsg());
            return dlt_err(rc, "%s (after record %lld)", m, (long long)rec - 1);
        }
        int same = headers_equal(&h2, &r->header);
        dlt_patch_header_free(&h2);
        if (!same)
            return dlt_err(DLT_EFORMAT, "%s: byte %lld: a different header in the middle of the stream (after record %lld)",
                           r->name, (long long)at, (long long)rec - 1);
        goto again;
    }
    if (got < 4) return REC_ERR(DLT_ETRUNC, "truncated in the record magic (stream ends after %zu bytes)", got);
    if (memcmp(pre, "PREC", 4) != 0) return REC_ERR(DLT_EFORMAT, "bad record magic (corrupt stream)");
    int64_t done = 4;
    got = read_n(r, pre + 4, 4);
    done += (int64_t)got;
    if (got < 4) return REC_ERR(DLT_ETRUNC, "truncated in the record length (stream ends after %lld bytes)", (long long)done);
    int64_t len = get32(pre + 4), total = len + 8;
    if (len < FIXED_BYTES + 4) return REC_ERR(DLT_EFORMAT, "record length %lld too small (corrupt stream)", (long long)len);
    if (len > MAX_RECORD)
        return REC_ERR(DLT_ENOMEM, "record length %lld exceeds the %lld-byte limit (corrupt stream?)", (long long)len,
                       (long long)MAX_RECORD);
    uint32_t crc = dlt_crc32(0, pre, 8);
    uint8_t *q = pre + 8;
    if ((got = read_n(r, q, 2)) < 2)
        return REC_ERR(DLT_ETRUNC, "truncated in the id (stream ends after %lld of %lld bytes)", (long long)(done + got),
                       (long long)total);
    done += 2;
    int idlen = get16(q);
    if (idlen > 255) return REC_ERR(DLT_EFORMAT, "id length %d over 255 (corrupt stream)", idlen);
    if (FIXED_BYTES + idlen + 4 > len) return REC_ERR(DLT_EFORMAT, "record length %lld too small for its id", (long long)len);
    got = read_n(r, q + 2, (size_t)idlen + 28);
    done += (int64_t)got;
    if ((int)got < idlen + 28)
        return REC_ERR(DLT_ETRUNC, "truncated in the record prefix (stream ends after %lld of %lld bytes)", (long long)done,
                       (long long)total);
    crc = dlt_crc32(crc, q, 2 + (size_t)idlen + 28);
    const uint8_t *s = q + 2 + idlen;
    int32_t corner[3], size[3];
    for (int i = 0; i < 3; i++) {
        corner[i] = (int32_t)get32(s + 4 * i);
        size[i] = (int32_t)get32(s + 12 + 4 * i);
    }
    uint32_t ch = get32(s + 24);
    for (int i = 0; i < 3; i++)
        if (size[i] < 1 || size[i] > MAX_SIDE)
            return REC_ERR(DLT_EFORMAT, "patch size %d,%d,%d out of range 1..%d (corrupt stream)", size[0], size[1], size[2],
                           MAX_SIDE);
    if (ch < 1 || ch > MAX_CHANNELS)
        return REC_ERR(DLT_EFORMAT, "channel count %u out of range 1..%d (corrupt stream)", ch, MAX_CHANNELS);
    int64_t vox = (int64_t)size[0] * size[1] * size[2];
    int64_t nimg = vox * ch;
    /* The length decides has_label before that byte is read: only two values fit. */
    int64_t base = FIXED_BYTES + idlen + 4 * nimg;
    int has_label;
    if (len == base) has_label = 0;
    else if (len == base + 2 * vox) has_label = 1;
    else
        return REC_ERR(DLT_EFORMAT, "record length %lld does not match its sizes (%d,%d,%d x %u channels: %lld or %lld)",
                       (long long)len, size[0], size[1], size[2], ch, (long long)base, (long long)(base + 2 * vox));
    if (nimg > p->cap_image) {
        dlt_free(p->image);
        p->cap_image = 0;
        if (!(p->image = dlt_alloc(nimg, sizeof(float), "patch image")))
            return REC_ERR(DLT_ENOMEM, "%s", dlt_errmsg());
        p->cap_image = nimg;
    }
    int rc;
    if ((rc = read_part(r, rec, at, p->image, 4 * nimg, &crc, &done, total, "image"))) return rc;
    uint8_t hl;
    if ((rc = read_part(r, rec, at, &hl, 1, &crc, &done, total, "label flag"))) return rc;
    if (hl != has_label)
        return REC_ERR(DLT_EFORMAT, "label flag %u disagrees with the record length (corrupt stream)", hl);
    if (has_label) {
        if (vox > p->cap_label) {
            dlt_free(p->label);
            p->cap_label = 0;
            if (!(p->label = dlt_alloc(vox, sizeof(uint16_t), "patch label")))
                return REC_ERR(DLT_ENOMEM, "%s", dlt_errmsg());
            p->cap_label = vox;
        }
        if ((rc = read_part(r, rec, at, p->label, 2 * vox, &crc, &done, total, "label"))) return rc;
    }
    uint8_t cb[4];
    got = read_n(r, cb, 4);
    done += (int64_t)got;
    if (got < 4)
        return REC_ERR(DLT_ETRUNC, "truncated in the checksum (stream ends after %lld of %lld bytes)", (long long)done,
                       (long long)total);
    if (get32(cb) != crc) return REC_ERR(DLT_ECRC, "crc mismatch (corrupt record)");
    if (HOST_BE) {
        swap_elems(p->image, nimg, 4);
        if (has_label) swap_elems(p->label, vox, 2);
    }
    memcpy(p->id, q + 2, (size_t)idlen);
    p->id[idlen] = 0;
    memcpy(p->corner, corner, sizeof corner);
    memcpy(p->size, size, sizeof size);
    p->channels = ch;
    p->has_label = has_label;
    /* Header consistency: a record must match what the header promises. */
    const char *v;
    int hp[3];
    if ((v = dlt_patch_header_get(&r->header, "channels")) && atol(v) != (long)ch)
        return REC_ERR(DLT_EFORMAT, "%u channels, the header says %s", ch, v);
    if ((v = dlt_patch_header_get(&r->header, "patch")) && dlt_parse_int3(v, 1, MAX_SIDE, hp) == 0 &&
        (hp[0] != size[0] || hp[1] != size[1] || hp[2] != size[2]))
        return REC_ERR(DLT_EFORMAT, "patch size %d,%d,%d, the header says %s", size[0], size[1], size[2], v);
    if ((v = dlt_patch_header_get(&r->header, "label")) && (strcmp(v, "yes") == 0) != has_label)
        return REC_ERR(DLT_EFORMAT, "%s a label, the header says label %s", has_label ? "has" : "lacks", v);
    r->record++;
    return 1;
}

/* ---- writing ---- */

int dlt_patch_write_header(FILE *f, const dlt_patch_header *h)
{
    if (fputs(MAGIC_LINE, f) == EOF) return dlt_err(DLT_EIO, "patch stream: write failed: %s", strerror(errno));
    for (int i = 0; i < h->nkeys; i++) {
        if (!valid_key(h->key[i]) || strchr(h->value[i], '\n'))
            return dlt_err(DLT_EINVAL, "patch header: invalid key or value '%s'", h->key[i]);
        if (fprintf(f, "%s %s\n", h->key[i], h->value[i]) < 0)
            return dlt_err(DLT_EIO, "patch stream: write failed: %s", strerror(errno));
    }
    if (fputs("end\n", f) == EOF) return dlt_err(DLT_EIO, "patch stream: write failed: %s", strerror(errno));
    return 0;
}

/* Write n elements of `size` bytes as little-endian, adding them to the CRC. */
static int write_le(FILE *f, const void *data, int64_t n, int size, uint32_t *crc)
{
    if (!HOST_BE) {
        *crc = dlt_crc32(*crc, data, (size_t)(n * size));
        return dlt_write_all(f, data, (size_t)(n * size), "patch stream");
    }
    uint8_t tmp[4096];
    int64_t per = (int64_t)sizeof tmp / size;
    for (int64_t i = 0; i < n; i += per) {
        int64_t k = n - i < per ? n - i : per;
        memcpy(tmp, (const uint8_t *)data + i * size, (size_t)(k * size));
        swap_elems(tmp, k, size);
        *crc = dlt_crc32(*crc, tmp, (size_t)(k * size));
        int rc = dlt_write_all(f, tmp, (size_t)(k * size), "patch stream");
        if (rc) return rc;
    }
    return 0;
}

int dlt_patch_write(FILE *f, const dlt_patch *p)
{
    size_t idlen = strnlen(p->id, sizeof p->id);
    if (idlen > 255) return dlt_err(DLT_EINVAL, "patch: id longer than 255 bytes");
    for (int i = 0; i < 3; i++)
        if (p->size[i] < 1 || p->size[i] > MAX_SIDE)
            return dlt_err(DLT_EINVAL, "patch '%s': size %d,%d,%d out of range 1..%d", p->id, p->size[0], p->size[1],
                           p->size[2], MAX_SIDE);
    if (p->channels < 1 || p->channels > MAX_CHANNELS)
        return dlt_err(DLT_EINVAL, "patch '%s': channel count %u out of range", p->id, p->channels);
    if (p->has_label && !p->label) return dlt_err(DLT_EINVAL, "patch '%s': has_label but no label data", p->id);
    int64_t vox = (int64_t)p->size[0] * p->size[1] * p->size[2];
    int64_t nimg = vox * p->channels;
    int64_t len = FIXED_BYTES + (int64_t)idlen + 4 * nimg + (p->has_label ? 2 * vox : 0);
    if (len > MAX_RECORD) return dlt_err(DLT_EINVAL, "patch '%s': record of %lld bytes too large", p->id, (long long)len);
    uint8_t pre[8 + 2 + 255 + 28];
    memcpy(pre, "PREC", 4);
    put32(pre + 4, (uint32_t)len);
    put16(pre + 8, (uint16_t)idlen);
    memcpy(pre + 10, p->id, idlen);
    uint8_t *s = pre + 10 + idlen;
    for (int i = 0; i < 3; i++) {
        put32(s + 4 * i, (uint32_t)p->corner[i]);
        put32(s + 12 + 4 * i, (uint32_t)p->size[i]);
    }
    put32(s + 24, p->channels);
    size_t npre = 10 + idlen + 28;
    uint32_t crc = dlt_crc32(0, pre, npre);
    int rc;
    if ((rc = dlt_write_all(f, pre, npre, "patch stream"))) return rc;
    if ((rc = write_le(f, p->image, nimg, 4, &crc))) return rc;
    uint8_t hl = p->has_label ? 1 : 0;
    if ((rc = write_le(f, &hl, 1, 1, &crc))) return rc;
    if (p->has_label && (rc = write_le(f, p->label, vox, 2, &crc))) return rc;
    uint8_t cb[4];
    put32(cb, crc);
    return dlt_write_all(f, cb, 4, "patch stream");
}
