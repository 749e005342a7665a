/* dlt/json.h - a small JSON reader (to a tree) and writer (to a growing
 * buffer), enough for safetensors headers, dlt-info --json and any tool that
 * emits or reads JSON. Strict RFC 8259 on input: no comments, no trailing
 * commas, duplicate object keys refused, nesting depth capped at 64. */
#ifndef DLT_JSON_H
#define DLT_JSON_H

#include <stdint.h>
#include <stdio.h>

enum { DLT_JSON_NULL, DLT_JSON_BOOL, DLT_JSON_NUMBER, DLT_JSON_STRING, DLT_JSON_ARRAY, DLT_JSON_OBJECT };

typedef struct dlt_json {
    int type;
    int boolean;          /* BOOL */
    double number;        /* NUMBER */
    int is_int;           /* NUMBER written without fraction/exponent and fits int64 */
    int64_t integer;      /* valid when is_int */
    char *string;         /* STRING: UTF-8, NUL-terminated (len excludes the NUL) */
    int64_t len;
    int n;                /* ARRAY / OBJECT: element count */
    struct dlt_json *items; /* [n] */
    char **keys;          /* OBJECT: keys[i] names items[i] */
} dlt_json;

/* Parse `len` bytes of text into *v (freed with dlt_json_free). On error
 * returns DLT_EFORMAT with a message "byte N: what is wrong". Trailing
 * whitespace is allowed, anything else after the value is an error. */
int dlt_json_parse(const char *text, int64_t len, dlt_json *v);
void dlt_json_free(dlt_json *v);
/* Member of an object by key (NULL if absent or v is not an object). */
const dlt_json *dlt_json_get(const dlt_json *v, const char *key);
/* Name of a type ("string", "object"...), for messages. */
const char *dlt_json_type_name(int type);

/* Writer: appends to a buffer, inserting commas itself. Keys are given to
 * every value inside an object and NULL inside an array or at the top.
 * Errors (out of memory, unbalanced nesting) are sticky: check dlt_jw_error
 * at the end. Doubles that are NaN or infinite are written as null. */
typedef struct dlt_jw {
    char *s;
    int64_t len, cap;
    int depth;
    char stack[64];   /* '{' or '[' per open level */
    int count[64];    /* values written at each level */
    int ndocs;        /* top-level values written (separated by newlines) */
    int indent;       /* 0: compact; >0: pretty, this many spaces per level */
    int err;
} dlt_jw;

void dlt_jw_init(dlt_jw *w, int indent);
void dlt_jw_free(dlt_jw *w);
void dlt_jw_object(dlt_jw *w, const char *key);
void dlt_jw_array(dlt_jw *w, const char *key);
void dlt_jw_end(dlt_jw *w); /* closes the innermost object or array */
void dlt_jw_string(dlt_jw *w, const char *key, const char *s);
void dlt_jw_int(dlt_jw *w, const char *key, int64_t x);
void dlt_jw_double(dlt_jw *w, const char *key, double x);
void dlt_jw_bool(dlt_jw *w, const char *key, int b);
void dlt_jw_null(dlt_jw *w, const char *key);
/* Raw bytes appended as they are (padding, a newline between documents). */
void dlt_jw_raw(dlt_jw *w, const char *s, int64_t n);
/* 0, or DLT_ENOMEM / DLT_EINVAL with a message. */
int dlt_jw_error(const dlt_jw *w);

/* Write s as a quoted JSON string to f (escaping quotes, backslashes and
 * control characters; invalid UTF-8 bytes become U+FFFD). */
int dlt_json_fput_string(FILE *f, const char *s);

#endif
