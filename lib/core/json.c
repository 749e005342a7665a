/* json.c - JSON reader and writer (dlt/json.h). Recursive descent over a
 * length-bounded buffer; the depth cap keeps hostile input from exhausting
 * the stack. */
#include "dlt/json.h"
#include "dlt/core.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    int64_t n, i;
} parser;

static int perr(parser *p, const char *what)
{
    return dlt_err(DLT_EFORMAT, "byte %lld: %s", (long long)p->i, what);
}

static void skip_ws(parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int hex4(parser *p, unsigned *out)
{
    if (p->i + 4 > p->n) return perr(p, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return perr(p, "bad \\u escape");
    }
    *out = v;
    return 0;
}

static int put_utf8(char *o, unsigned c)
{
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xc0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3f)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | c >> 12); o[1] = (char)(0x80 | ((c >> 6) & 0x3f)); o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | c >> 18); o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f)); o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* p->i at the opening quote. The decoded string is never longer than the
 * escaped text, so one allocation of that size suffices. */
static int parse_string(parser *p, char **out, int64_t *outlen)
{
    p->i++;
    int64_t start = p->i, end = start;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) return perr(p, "unterminated string");
    char *o = malloc((size_t)(end - start) + 1);
    if (!o) return dlt_err(DLT_ENOMEM, "out of memory");
    int64_t k = 0;
    while (p->s[p->i] != '"') {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c < 0x20) { free(o); return perr(p, "control character in string"); }
        if (c != '\\') { o[k++] = (char)c; p->i++; continue; }
        p->i++;
        char e = p->s[p->i++];
        unsigned u, u2;
        switch (e) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u':
            if (hex4(p, &u)) { free(o); return DLT_EFORMAT; }
            if (u >= 0xd800 && u < 0xdc00) {
                if (p->i + 6 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                    p->i += 2;
                    if (hex4(p, &u2)) { free(o); return DLT_EFORMAT; }
                    if (u2 < 0xdc00 || u2 >= 0xe000) { free(o); return perr(p, "bad surrogate pair"); }
                    u = 0x10000 + ((u - 0xd800) << 10) + (u2 - 0xdc00);
                } else { free(o); return perr(p, "lone surrogate"); }
            } else if (u >= 0xdc00 && u < 0xe000) { free(o); return perr(p, "lone surrogate"); }
            k += put_utf8(o + k, u);
            break;
        default: free(o); return perr(p, "bad escape in string");
        }
    }
    p->i++;
    o[k] = 0;
    *out = o;
    *outlen = k;
    return 0;
}

static int parse_value(parser *p, dlt_json *v, int depth);

static int parse_number(parser *p, dlt_json *v)
{
    int64_t st = p->i;
    int frac = 0;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return perr(p, "bad number");
    if (p->s[p->i] == '0') p->i++;
    else while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        frac = 1;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return perr(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        frac = 1;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return perr(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    char buf[64];
    int64_t L = p->i - st;
    if (L >= (int64_t)sizeof buf) return perr(p, "number too long");
    memcpy(buf, p->s + st, (size_t)L);
    buf[L] = 0;
    v->type = DLT_JSON_NUMBER;
    v->number = strtod(buf, NULL);
    if (!frac) {
        errno = 0;
        long long x = strtoll(buf, NULL, 10);
        if (!errno) {
            v->is_int = 1;
            v->integer = x;
        }
    }
    return 0;
}

static int expect_word(parser *p, const char *w)
{
    size_t L = strlen(w);
    if (p->i + (int64_t)L > p->n || memcmp(p->s + p->i, w, L)) return perr(p, "unexpected character");
    p->i += (int64_t)L;
    return 0;
}

static int grow(dlt_json *v, int *cap, int is_obj)
{
    if (v->n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 8;
    dlt_json *ni = realloc(v->items, sizeof *ni * (size_t)nc);
    if (!ni) return dlt_err(DLT_ENOMEM, "out of memory");
    v->items = ni;
    if (is_obj) {
        char **nk = realloc(v->keys, sizeof *nk * (size_t)nc);
        if (!nk) return dlt_err(DLT_ENOMEM, "out of memory");
        v->keys = nk;
    }
    *cap = nc;
    return 0;
}

static int parse_container(parser *p, dlt_json *v, int depth, int is_obj)
{
    if (depth >= MAX_DEPTH) return perr(p, "nesting too deep");
    v->type = is_obj ? DLT_JSON_OBJECT : DLT_JSON_ARRAY;
    p->i++;
    int cap = 0, rc;
    skip_ws(p);
    char close = is_obj ? '}' : ']';
    if (p->i < p->n && p->s[p->i] == close) { p->i++; return 0; }
    for (;;) {
        skip_ws(p);
        if ((rc = grow(v, &cap, is_obj))) return rc;
        char *key = NULL;
        if (is_obj) {
            if (p->i >= p->n || p->s[p->i] != '"') return perr(p, p->i >= p->n ? "unexpected end" : "expected a key string");
            int64_t kl, at = p->i;
            if ((rc = parse_string(p, &key, &kl))) return rc;
            for (int j = 0; j < v->n; j++)
                if (strcmp(v->keys[j], key) == 0) {
                    free(key);
                    p->i = at;
                    return perr(p, "duplicate key");
                }
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { free(key); return perr(p, "expected ':'"); }
            p->i++;
            v->keys[v->n] = key;
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->n++;
        if ((rc = parse_value(p, &v->items[v->n - 1], depth + 1))) return rc;
        skip_ws(p);
        if (p->i >= p->n) return perr(p, "unexpected end");
        if (p->s[p->i] == ',') { p->i++; continue; }
        if (p->s[p->i] == close) { p->i++; return 0; }
        return perr(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *p, dlt_json *v, int depth)
{
    skip_ws(p);
    if (p->i >= p->n) return perr(p, "unexpected end");
    char c = p->s[p->i];
    switch (c) {
    case '{': return parse_container(p, v, depth, 1);
    case '[': return parse_container(p, v, depth, 0);
    case '"': v->type = DLT_JSON_STRING; return parse_string(p, &v->string, &v->len);
    case 't': v->type = DLT_JSON_BOOL; v->boolean = 1; return expect_word(p, "true");
    case 'f': v->type = DLT_JSON_BOOL; return expect_word(p, "false");
    case 'n': v->type = DLT_JSON_NULL; return expect_word(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return perr(p, "unexpected character");
    }
}

int dlt_json_parse(const char *text, int64_t len, dlt_json *v)
{
    memset(v, 0, sizeof *v);
    parser p = {text, len, 0};
    int rc = parse_value(&p, v, 0);
    if (!rc) {
        skip_ws(&p);
        if (p.i < p.n) rc = perr(&p, "trailing characters after the JSON value");
    }
    if (rc) dlt_json_free(v);
    return rc;
}

void dlt_json_free(dlt_json *v)
{
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        dlt_json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    memset(v, 0, sizeof *v);
}

const dlt_json *dlt_json_get(const dlt_json *v, const char *key)
{
    if (!v || v->type != DLT_JSON_OBJECT) return NULL;
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], key) == 0) return &v->items[i];
    return NULL;
}

const char *dlt_json_type_name(int type)
{
    static const char *n[] = {"null", "boolean", "number", "string", "array", "object"};
    return type >= 0 && type <= 5 ? n[type] : "?";
}

/* ---- writer ---- */

void dlt_jw_init(dlt_jw *w, int indent)
{
    memset(w, 0, sizeof *w);
    w->indent = indent;
}

void dlt_jw_free(dlt_jw *w)
{
    free(w->s);
    memset(w, 0, sizeof *w);
}

void dlt_jw_raw(dlt_jw *w, const char *s, int64_t n)
{
    if (w->err) return;
    if (w->len + n + 1 > w->cap) {
        int64_t nc = w->cap ? w->cap : 256;
        while (nc < w->len + n + 1) nc *= 2;
        char *ns = realloc(w->s, (size_t)nc);
        if (!ns) { w->err = dlt_err(DLT_ENOMEM, "json: out of memory"); return; }
        w->s = ns;
        w->cap = nc;
    }
    memcpy(w->s + w->len, s, (size_t)n);
    w->len += n;
    w->s[w->len] = 0;
}

static void puts_(dlt_jw *w, const char *s) { dlt_jw_raw(w, s, (int64_t)strlen(s)); }

static void newline(dlt_jw *w)
{
    if (!w->indent) return;
    puts_(w, "\n");
    for (int i = 0; i < w->depth * w->indent; i++) puts_(w, " ");
}

/* Escape into the buffer: quotes, backslash, control characters; bytes that
 * are not valid UTF-8 become U+FFFD so the output always parses. */
static void put_escaped(dlt_jw *w, const char *s)
{
    puts_(w, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        char buf[8];
        if (c == '"' || c == '\\') { buf[0] = '\\'; buf[1] = (char)c; dlt_jw_raw(w, buf, 2); p++; }
        else if (c == '\n') { puts_(w, "\\n"); p++; }
        else if (c == '\t') { puts_(w, "\\t"); p++; }
        else if (c == '\r') { puts_(w, "\\r"); p++; }
        else if (c < 0x20 || c == 0x7f) { snprintf(buf, sizeof buf, "\\u%04x", c); puts_(w, buf); p++; }
        else if (c < 0x80) { dlt_jw_raw(w, (const char *)p, 1); p++; }
        else {
            int n = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            int ok = n > 0;
            for (int k = 1; ok && k < n; k++) ok = (p[k] & 0xc0) == 0x80;
            if (ok) { dlt_jw_raw(w, (const char *)p, n); p += n; }
            else { puts_(w, "\\ufffd"); p++; }
        }
    }
    puts_(w, "\"");
}

static void begin_value(dlt_jw *w, const char *key)
{
    if (w->err) return;
    if (w->depth > 0) {
        if (w->count[w->depth - 1]++) puts_(w, ",");
        newline(w);
        int in_obj = w->stack[w->depth - 1] == '{';
        if (in_obj != (key != NULL)) {
            w->err = dlt_err(DLT_EINVAL, "json: %s", in_obj ? "value without a key in an object" : "key inside an array");
            return;
        }
        if (key) {
            put_escaped(w, key);
            puts_(w, w->indent ? ": " : ":");
        }
    } else if (w->ndocs++) {
        puts_(w, "\n"); /* several top-level documents: one per line */
    }
}

static void open_(dlt_jw *w, const char *key, char c)
{
    begin_value(w, key);
    if (w->err) return;
    if (w->depth >= 63) { w->err = dlt_err(DLT_EINVAL, "json: nesting too deep"); return; }
    char s[2] = {c, 0};
    puts_(w, s);
    w->stack[w->depth] = c;
    w->depth++;
    w->count[w->depth - 1] = 0;
}

void dlt_jw_object(dlt_jw *w, const char *key) { open_(w, key, '{'); }
void dlt_jw_array(dlt_jw *w, const char *key) { open_(w, key, '['); }

void dlt_jw_end(dlt_jw *w)
{
    if (w->err) return;
    if (w->depth == 0) { w->err = dlt_err(DLT_EINVAL, "json: end without an open object or array"); return; }
    int had = w->count[w->depth - 1];
    char c = w->stack[--w->depth] == '{' ? '}' : ']';
    if (had) newline(w);
    char s[2] = {c, 0};
    puts_(w, s);
}

void dlt_jw_string(dlt_jw *w, const char *key, const char *s)
{
    begin_value(w, key);
    if (!w->err) put_escaped(w, s ? s : "");
}

void dlt_jw_int(dlt_jw *w, const char *key, int64_t x)
{
    char buf[32];
    begin_value(w, key);
    snprintf(buf, sizeof buf, "%lld", (long long)x);
    puts_(w, buf);
}

void dlt_jw_double(dlt_jw *w, const char *key, double x)
{
    char buf[40];
    begin_value(w, key);
    if (!isfinite(x)) { puts_(w, "null"); return; }
    /* Shortest of %.15g / %.17g that reads back exactly. */
    snprintf(buf, sizeof buf, "%.15g", x);
    if (strtod(buf, NULL) != x) snprintf(buf, sizeof buf, "%.17g", x);
    puts_(w, buf);
}

void dlt_jw_bool(dlt_jw *w, const char *key, int b)
{
    begin_value(w, key);
    puts_(w, b ? "true" : "false");
}

void dlt_jw_null(dlt_jw *w, const char *key)
{
    begin_value(w, key);
    puts_(w, "null");
}

int dlt_jw_error(const dlt_jw *w)
{
    if (w->err) return w->err;
    if (w->depth) return dlt_err(DLT_EINVAL, "json: %d unclosed objects or arrays", w->depth);
    return 0;
}

int dlt_json_fput_string(FILE *f, const char *s)
{
    dlt_jw w;
    dlt_jw_init(&w, 0);
    dlt_jw_string(&w, NULL, s);
    int rc = dlt_jw_error(&w);
    if (!rc && fwrite(w.s, 1, (size_t)w.len, f) != (size_t)w.len) rc = dlt_err(DLT_EIO, "write failed");
    dlt_jw_free(&w);
    return rc;
}
