/* dlt/listfile.h - list files: the tab-separated tables with which the tools
 * name many volumes (dlt-sample --list, dlt-dice --list, dlt-infer --list,
 * dlt-train --val). Blank lines and lines starting with '#' are skipped;
 * fields are trimmed of spaces; an optional header row names the columns;
 * paths are relative to the list file's folder. Errors name the list and
 * the line ("train.tsv:7: ..."). */
#ifndef DLT_LISTFILE_H
#define DLT_LISTFILE_H

typedef struct dlt_listfile {
    char *path;    /* the list as given ("-" for stdin) */
    int ncols;     /* fields per row (every row has exactly this many) */
    char **col;    /* [ncols] header names, or NULL when there is no header */
    int nrows;
    char ***cell;  /* [nrows][ncols] field text */
    int *line;     /* [nrows] 1-based line number in the file */
} dlt_listfile;

/* Read a list. The first row is a header when one of its fields equals
 * (ignoring case) a name in `header_names` (NULL-terminated; e.g. {"id",
 * "image", "label", NULL}). Rows with another field count than the first
 * are refused, naming the line; an empty list is refused. */
int dlt_listfile_read(const char *path, const char *const *header_names, dlt_listfile *l);
void dlt_listfile_free(dlt_listfile *l);

/* The column named `name` (ignoring case), or -1 (also without a header). */
int dlt_listfile_column(const dlt_listfile *l, const char *name);

/* Columns named `prefix` or `prefix`1, `prefix`2, ... (ignoring case), in
 * number order (the bare name first): e.g. the channels image, image1,
 * image2. Fills cols (up to max) and returns their count; 0 without a header. */
int dlt_listfile_numbered(const dlt_listfile *l, const char *prefix, int *cols, int max);

/* The path in cell (row, col) resolved against the list's folder (absolute
 * paths and "-" unchanged), newly allocated in *out (free()). must_exist:
 * fail unless it is readable, with "LIST:LINE: PATH: no such file". */
int dlt_listfile_path(const dlt_listfile *l, int row, int col, int must_exist, char **out);

/* "LIST:LINE" of a row, for messages (static buffer per thread). */
const char *dlt_listfile_where(const dlt_listfile *l, int row);

#endif
