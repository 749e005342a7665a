/* test_model.c - model files (dlt/model.h): round trip of tensors of every
 * dtype and of metadata; truncation at many offsets; corrupt JSON; lying
 * offsets (past the end, overlapping, gaps, wrong size); and exchange with
 * Python: a strict json+struct+numpy safetensors reader (python3-safetensors
 * is not in Debian) reads our file with the same values, and we read a file
 * that Python wrote. The JSON module is exercised on the way. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/json.h"
#include "dlt/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void build(dlt_model *m)
{
    dlt_model_init(m);
    float w[2 * 3 * 3 * 3 * 3];
    for (int i = 0; i < 162; i++) w[i] = (float)i * 0.01f - 0.5f;
    int64_t s5[5] = {2, 3, 3, 3, 3};
    dlt_model_add(m, "stem.weight", DLT_DT_F32, 5, s5, w);
    double d[4] = {1.5, -2.25, 1e300, -0.0};
    int64_t s1[1] = {4};
    dlt_model_add(m, "enc.0.0.bn0.running_var", DLT_DT_F64, 1, s1, d);
    int32_t i32[4] = {-1, 0, 7, 2147483647};
    dlt_model_add(m, "i32", DLT_DT_I32, 1, s1, i32);
    int64_t i64[4] = {-5, 1LL << 40, 0, 3};
    dlt_model_add(m, "optim.m.stem.weight", DLT_DT_I64, 1, s1, i64);
    uint8_t u8[3] = {0, 128, 255};
    int64_t s3[1] = {3};
    dlt_model_add(m, "u8", DLT_DT_U8, 1, s3, u8);
    uint16_t bf[2] = {0x3f80, 0xc000}; /* 1.0, -2.0 */
    int64_t s2[1] = {2};
    dlt_model_add(m, "bf16", DLT_DT_BF16, 1, s2, bf);
    uint16_t hf[2] = {0x3c00, 0x0001}; /* 1.0, 2^-24 */
    dlt_model_add(m, "f16", DLT_DT_F16, 1, s2, hf);
    dlt_model_add(m, "step", DLT_DT_I64, 0, NULL, i64 + 3);
    int64_t s0[2] = {0, 4};
    dlt_model_add(m, "empty", DLT_DT_F32, 2, s0, NULL);
    dlt_model_set_meta(m, "net", "unet");
    dlt_model_set_meta(m, "class_names", "background,spleen,\"quoted\\\",tab\tnewline\n\xc3\xa9");
    dlt_model_set_meta(m, "step", "1200");
}

static int same_model(const dlt_model *a, const dlt_model *b)
{
    if (a->ntensors != b->ntensors || a->nmeta != b->nmeta) return 0;
    for (int i = 0; i < a->ntensors; i++) {
        const dlt_model_tensor *t = &a->t[i], *u = dlt_model_find(b, t->name);
        if (!u || u->dtype != t->dtype || u->ndim != t->ndim || u->nbytes != t->nbytes) return 0;
        for (int k = 0; k < t->ndim; k++)
            if (u->shape[k] != t->shape[k]) return 0;
        if (memcmp(u->data, t->data, (size_t)t->nbytes)) return 0;
    }
    for (int i = 0; i < a->nmeta; i++) {
        const char *v = dlt_model_get_meta(b, a->meta_key[i]);
        if (!v || strcmp(v, a->meta_value[i])) return 0;
    }
    return 1;
}

static uint8_t *slurp(const char *path, int64_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)*n + 1);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n) *n = -1;
    fclose(f);
    return b;
}

/* A file from a header string and data bytes (header length set honestly). */
static int read_crafted(const char *hdr, int64_t ndata, char *msg, size_t msz)
{
    int64_t hl = (int64_t)strlen(hdr);
    uint8_t *b = calloc(1, (size_t)(8 + hl + ndata));
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, (size_t)hl);
    dlt_model m;
    int rc = dlt_model_read_mem(b, 8 + hl + ndata, "crafted.dltm", &m);
    snprintf(msg, msz, "%s", rc ? dlt_errmsg() : "");
    if (!rc) dlt_model_free(&m);
    free(b);
    return rc;
}

int main(void)
{
    char dir[] = "/tmp/test_model.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[256], msg[1024];
    snprintf(path, sizeof path, "%s/m.dltm", dir);

    /* JSON module */
    {
        dlt_json j;
        const char *txt = " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\", \"big\": 9007199254740993} ";
        int rc = dlt_json_parse(txt, (int64_t)strlen(txt), &j);
        const dlt_json *a = dlt_json_get(&j, "a"), *s = dlt_json_get(&j, "s"), *big = dlt_json_get(&j, "big");
        CHECK(rc == 0 && a && a->n == 5 && a->items[0].is_int && a->items[0].integer == 1 && a->items[1].number == -2500 &&
                  !a->items[1].is_int && a->items[2].boolean && a->items[4].type == DLT_JSON_NULL,
              "json: parse values");
        CHECK(s && strcmp(s->string, "x\xc3\xa9\xf0\x9f\x98\x80\n") == 0, "json: escapes and surrogate pairs");
        CHECK(big && big->is_int && big->integer == 9007199254740993LL, "json: int64 kept exact");
        dlt_json_free(&j);
        const char *bad[] = {"{", "{\"a\":1,}", "[1 2]", "{\"a\":1,\"a\":2}", "\"\\x\"", "01", "[1] x", "{\"a\" 1}",
                             "\"a\x01\"", "[\"\\ud800\"]", ""};
        int allbad = 1;
        for (int i = 0; i < 11; i++) {
            if (dlt_json_parse(bad[i], (int64_t)strlen(bad[i]), &j) != DLT_EFORMAT) {
                printf("# accepted bad json %d\n", i);
                allbad = 0;
            }
        }
        CHECK(allbad, "json: malformed inputs refused");
        char deep[200];
        memset(deep, '[', sizeof deep);
        CHECK(dlt_json_parse(deep, sizeof deep, &j) == DLT_EFORMAT && strstr(dlt_errmsg(), "deep"), "json: depth capped");
        dlt_jw w;
        dlt_jw_init(&w, 2);
        dlt_jw_object(&w, NULL);
        dlt_jw_string(&w, "k\"ey", "v\\al\x01ue\xff");
        dlt_jw_array(&w, "arr");
        dlt_jw_int(&w, NULL, -3);
        dlt_jw_double(&w, NULL, 0.1);
        dlt_jw_double(&w, NULL, 1.0 / 0.0);
        dlt_jw_bool(&w, NULL, 1);
        dlt_jw_end(&w);
        dlt_jw_object(&w, "empty");
        dlt_jw_end(&w);
        dlt_jw_end(&w);
        rc = dlt_jw_error(&w);
        dlt_json back;
        int prc = rc ? -1 : dlt_json_parse(w.s, w.len, &back);
        const dlt_json *arr = prc ? NULL : dlt_json_get(&back, "arr");
        CHECK(rc == 0 && prc == 0 && arr && arr->n == 4 && arr->items[1].number == 0.1 &&
                  arr->items[2].type == DLT_JSON_NULL &&
                  strcmp(dlt_json_get(&back, "k\"ey")->string, "v\\al\x01ue\xef\xbf\xbd") == 0,
              "json: writer output parses back");
        if (!prc) dlt_json_free(&back);
        dlt_jw_free(&w);
        dlt_jw_init(&w, 0);
        dlt_jw_object(&w, NULL);
        dlt_jw_int(&w, NULL, 1);
        CHECK(dlt_jw_error(&w) == DLT_EINVAL, "json writer: keyless value in an object is an error");
        dlt_jw_free(&w);
    }

    /* round trip */
    dlt_model m, r;
    build(&m);
    int rc = dlt_model_write(path, &m);
    CHECK(rc == 0, "write %s", rc ? dlt_errmsg() : "");
    rc = dlt_model_read(path, &r);
    CHECK(rc == 0 && same_model(&m, &r), "round trip: every dtype, scalar, empty tensor, metadata %s", rc ? dlt_errmsg() : "");
    {
        const dlt_model_tensor *t = dlt_model_find(&r, "bf16"), *h = dlt_model_find(&r, "f16");
        float f[2], g[2];
        dlt_model_tensor_to_f32(t, f);
        dlt_model_tensor_to_f32(h, g);
        CHECK(f[0] == 1.0f && f[1] == -2.0f && g[0] == 1.0f && g[1] == 5.9604644775390625e-8f, "bf16/f16 to f32");
    }
    dlt_model_free(&r);
    int64_t n = 0;
    uint8_t *file = slurp(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | file[i];
    CHECK((8 + hl) % 8 == 0 && (file[8 + hl - 1] == ' ' || file[8 + hl - 1] == '}'), "header padded to 8-byte alignment");
    CHECK(dlt_model_is_model(file, n) && dlt_model_is_model(file, 64) && !dlt_model_is_model("DLTPATCHES 1\n", 13),
          "is_model on the whole file, its first bytes, and not a stream");

    /* truncation: every cut must fail, naming the file */
    {
        int all = 1, named = 1;
        for (int64_t cut = 0; cut < n; cut += (cut < 200 ? 1 : 7)) {
            rc = dlt_model_read_mem(file, cut, "model.dltm", &r);
            if (rc == 0) {
                all = 0;
                dlt_model_free(&r);
            } else if (strncmp(dlt_errmsg(), "model.dltm: ", 12)) named = 0;
        }
        CHECK(all, "truncated file refused at every tested offset");
        CHECK(named, "truncation messages name the file");
        rc = dlt_model_read_mem(file, n - 3, "model.dltm", &r);
        CHECK(rc == DLT_ETRUNC && strstr(dlt_errmsg(), "tensor '") && strstr(dlt_errmsg(), "data_offsets exceed file"),
              "truncated data names the tensor: %s", dlt_errmsg());
        rc = dlt_model_read_mem(file, 20, "model.dltm", &r);
        CHECK(rc == DLT_ETRUNC && strstr(dlt_errmsg(), "header length"), "truncated header: %s", dlt_errmsg());
    }
    /* corrupt JSON: flip a structural byte */
    {
        uint8_t *c = malloc((size_t)n);
        memcpy(c, file, (size_t)n);
        char *q = memchr(c + 8, ':', hl);
        *q = ';';
        rc = dlt_model_read_mem(c, n, "model.dltm", &r);
        CHECK(rc == DLT_EFORMAT && strstr(dlt_errmsg(), "model.dltm: header JSON: byte"), "corrupt JSON: %s", dlt_errmsg());
        memcpy(c, file, (size_t)n);
        c[3] = 0x7f;
        rc = dlt_model_read_mem(c, n, "model.dltm", &r);
        CHECK(rc != 0 && strstr(dlt_errmsg(), "header length"), "absurd header length: %s", dlt_errmsg());
        free(c);
    }
    free(file);

    /* lying offsets */
    {
        const char *past = "{\"enc.0.0.conv0.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,80]}}";
        rc = read_crafted(past, 8, msg, sizeof msg);
        CHECK(rc == DLT_ETRUNC && strstr(msg, "crafted.dltm: tensor 'enc.0.0.conv0.weight': data_offsets exceed file"),
              "offsets past the end: %s", msg);
        const char *size = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
        rc = read_crafted(size, 8, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT && strstr(msg, "tensor 'a'") && strstr(msg, "need 12"), "size != shape*dtype: %s", msg);
        const char *ovl = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        rc = read_crafted(ovl, 12, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT && strstr(msg, "tensor 'b': data_offsets overlap tensor 'a'"), "overlap: %s", msg);
        const char *gap = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}";
        rc = read_crafted(gap, 6, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT && strstr(msg, "tensor 'a'") && strstr(msg, "unused"), "gap: %s", msg);
        const char *extra = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}";
        rc = read_crafted(extra, 10, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT && strstr(msg, "after the last"), "trailing bytes: %s", msg);
        const char *dt = "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}";
        rc = read_crafted(dt, 8, msg, sizeof msg);
        CHECK(rc == DLT_EUNSUP && strstr(msg, "tensor 'a': unsupported dtype 'C64'"), "unknown dtype: %s", msg);
        const char *ovf = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}";
        rc = read_crafted(ovf, 8, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT && strstr(msg, "overflow"), "shape overflow: %s", msg);
        const char *neg = "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}";
        rc = read_crafted(neg, 0, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT && strstr(msg, "bad shape"), "negative dim: %s", msg);
        const char *meta = "{\"__metadata__\":{\"step\":12}}";
        rc = read_crafted(meta, 0, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT && strstr(msg, "'step'"), "non-string metadata: %s", msg);
        rc = read_crafted("[1,2]", 0, msg, sizeof msg);
        CHECK(rc == DLT_EFORMAT, "header not an object: %s", msg);
        rc = read_crafted("{}", 0, msg, sizeof msg);
        CHECK(rc == 0, "empty model (no tensors) reads");
    }
    rc = dlt_model_read("/nonexistent/m.dltm", &r);
    CHECK(rc == DLT_EIO && strstr(dlt_errmsg(), "/nonexistent/m.dltm"), "missing file: %s", dlt_errmsg());

    /* exchange with Python */
    const char *py = "/usr/bin/python3";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s -c 'import numpy' >/dev/null 2>&1", py);
    if (access(py, X_OK) || system(cmd) != 0) {
        SKIP("python3 with numpy not available");
        SKIP("python3 with numpy not available");
    } else {
        char script[256];
        snprintf(script, sizeof script, "%s/st.py", dir);
        FILE *f = fopen(script, "w");
        fputs("import json, struct, sys, numpy as np\n"
              "DT = {'F32':'<f4','F64':'<f8','I32':'<i4','I64':'<i8','U8':'u1','BF16':'<u2','F16':'<f2'}\n"
              "def load(p):\n"
              "    b = open(p,'rb').read()\n"
              "    (n,) = struct.unpack('<Q', b[:8])\n"
              "    assert 8 + n <= len(b)\n"
              "    h = json.loads(b[8:8+n].decode('utf-8'))\n"
              "    meta = h.pop('__metadata__', {})\n"
              "    data = b[8+n:]\n"
              "    spans = sorted((v['data_offsets'], k) for k, v in h.items())\n"
              "    at = 0\n"
              "    for (s, e), k in spans:\n"
              "        assert s == at, k\n"
              "        at = e\n"
              "    assert at == len(data)\n"
              "    out = {}\n"
              "    for k, v in h.items():\n"
              "        s, e = v['data_offsets']\n"
              "        a = np.frombuffer(data[s:e], dtype=DT[v['dtype']]).reshape(v['shape'])\n"
              "        out[k] = a\n"
              "    return out, meta\n"
              "if sys.argv[1] == 'check':\n"
              "    t, meta = load(sys.argv[2])\n"
              "    w = np.arange(162, dtype=np.float32) * np.float32(0.01) - np.float32(0.5)\n"
              "    assert t['stem.weight'].shape == (2,3,3,3,3)\n"
              "    assert np.array_equal(t['stem.weight'].ravel(), w)\n"
              "    assert t['enc.0.0.bn0.running_var'].tolist() == [1.5, -2.25, 1e300, -0.0]\n"
              "    assert t['i32'].tolist() == [-1, 0, 7, 2147483647]\n"
              "    assert t['optim.m.stem.weight'].tolist() == [-5, 1 << 40, 0, 3]\n"
              "    assert t['u8'].tolist() == [0, 128, 255]\n"
              "    assert t['f16'].tolist()[0] == 1.0\n"
              "    assert t['step'].shape == () and int(t['step']) == 3\n"
              "    assert t['empty'].shape == (0, 4)\n"
              "    assert meta['net'] == 'unet' and meta['step'] == '1200'\n"
              "    assert meta['class_names'] == 'background,spleen,\"quoted\\\\\",tab\\tnewline\\n\\u00e9', repr(meta['class_names'])\n"
              "    print('python ok')\n"
              "else:\n"
              "    # write like safetensors.numpy.save_file: sorted by name, space padding\n"
              "    t = {'head.weight': np.arange(6, dtype=np.float32).reshape(2,3,1,1,1) / 4,\n"
              "         'bn.running_mean': np.array([0.5, -1.0], dtype=np.float64),\n"
              "         'n': np.array([1, 2, 3], dtype=np.int64)}\n"
              "    h, off, blobs = {'__metadata__': {'net': 'fcn', 'classes': '2'}}, 0, []\n"
              "    for k in sorted(t):\n"
              "        a = t[k]; d = a.tobytes()\n"
              "        h[k] = {'dtype': {'float32':'F32','float64':'F64','int64':'I64'}[str(a.dtype)], 'shape': list(a.shape), 'data_offsets': [off, off+len(d)]}\n"
              "        off += len(d); blobs.append(d)\n"
              "    s = json.dumps(h, separators=(',', ':')).encode()\n"
              "    s += b' ' * ((8 - len(s) % 8) % 8)\n"
              "    open(sys.argv[2], 'wb').write(struct.pack('<Q', len(s)) + s + b''.join(blobs))\n",
              f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "%s %s check %s", py, script, path);
        CHECK(system(cmd) == 0, "python json+struct+numpy reader reads our file with the same values");
        char pyfile[256];
        snprintf(pyfile, sizeof pyfile, "%s/py.safetensors", dir);
        snprintf(cmd, sizeof cmd, "%s %s write %s", py, script, pyfile);
        rc = system(cmd) == 0 ? dlt_model_read(pyfile, &r) : -100;
        int ok = rc == 0;
        if (ok) {
            const dlt_model_tensor *hw = dlt_model_find(&r, "head.weight"), *bn = dlt_model_find(&r, "bn.running_mean");
            ok = hw && hw->dtype == DLT_DT_F32 && hw->ndim == 5 && hw->shape[0] == 2 && hw->shape[1] == 3 && bn &&
                 ((float *)hw->data)[5] == 1.25f && ((double *)bn->data)[1] == -1.0 &&
                 strcmp(dlt_model_get_meta(&r, "net"), "fcn") == 0;
            dlt_model_free(&r);
        }
        CHECK(ok, "we read a file written by Python %s", rc && rc != -100 ? dlt_errmsg() : "");
        unlink(script);
        unlink(pyfile);
    }
    /* writing onto a path whose directory is missing fails, leaving nothing */
    rc = dlt_model_write("/nonexistent/dir/m.dltm", &m);
    CHECK(rc == DLT_EIO, "write into a missing directory fails: %s", dlt_errmsg());
    dlt_model_free(&m);
    unlink(path);
    rmdir(dir);
    return check_done();
}
