/* test_listfile.c - list files: header detection, comments, field counts,
 * relative paths and the messages that name the line. */
#include "check.h"
#include "dlt/core.h"
#include "dlt/listfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *write_bytes(const char *name, const char *text, size_t n)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fwrite(text, 1, n, f);
    fclose(f);
    return path;
}

static const char *write_list(const char *name, const char *text) { return write_bytes(name, text, strlen(text)); }

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/dlt-listfile-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    static const char *const names[] = {"id", "image", "label", NULL};
    dlt_listfile l;

    const char *p = write_list("a.tsv", "# comment\nID\timage\tlabel\n\ns1\t img1.nii\tlab1.nii \r\n"
                                        "s2\t/abs/img2.nii\tlab2.nii\n");
    CHECK(dlt_listfile_read(p, names, &l) == 0, "reads a list with header, comment, blank line, CRLF");
    CHECK(l.col && l.ncols == 3 && l.nrows == 2, "header and two rows");
    CHECK(dlt_listfile_column(&l, "label") == 2 && dlt_listfile_column(&l, "Image") == 1 &&
              dlt_listfile_column(&l, "other") == -1,
          "columns by name, ignoring case");
    CHECK(l.line[0] == 4 && l.line[1] == 5, "line numbers of the rows");
    CHECK(!strcmp(l.cell[0][1], "img1.nii") && !strcmp(l.cell[0][2], "lab1.nii"), "fields trimmed");
    char *path;
    CHECK(dlt_listfile_path(&l, 0, 1, 0, &path) == 0 && !strcmp(path + strlen(dir), "/img1.nii"),
          "relative path resolved against the list's folder");
    free(path);
    CHECK(dlt_listfile_path(&l, 1, 1, 0, &path) == 0 && !strcmp(path, "/abs/img2.nii"), "absolute path unchanged");
    free(path);
    int rc = dlt_listfile_path(&l, 0, 1, 1, &path);
    CHECK(rc != 0 && path == NULL && strstr(dlt_errmsg(), "a.tsv:4: ") && strstr(dlt_errmsg(), "img1.nii: no such file"),
          "missing file names the line: %s", dlt_errmsg());
    dlt_listfile_free(&l);

    p = write_list("b.tsv", "s1\tx.nii\ty.nii\n");
    CHECK(dlt_listfile_read(p, names, &l) == 0 && !l.col && l.nrows == 1, "no header: the first row is data");
    dlt_listfile_free(&l);

    p = write_list("c.tsv", "id\timage\tlabel\ns1\tx.nii\n");
    CHECK(dlt_listfile_read(p, names, &l) != 0 &&
              strstr(dlt_errmsg(), "c.tsv:2: expected 3 tab-separated columns (id, image, label), got 2"),
          "short row named: %s", dlt_errmsg());
    p = write_list("d.tsv", "# only a comment\n\n");
    CHECK(dlt_listfile_read(p, names, &l) != 0 && strstr(dlt_errmsg(), "no entries"), "empty list refused");
    p = write_bytes("e.tsv", "id\timage\nx\0y\n", 14);
    CHECK(dlt_listfile_read(p, names, &l) != 0 && strstr(dlt_errmsg(), "NUL"), "NUL bytes refused: %s", dlt_errmsg());
    CHECK(dlt_listfile_read("/nonexistent/list.tsv", names, &l) != 0 && strstr(dlt_errmsg(), "/nonexistent/list.tsv"),
          "missing list named");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_done();
}
