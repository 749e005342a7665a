#!/usr/bin/env python3
"""tests/helpers/optcheck.py TOOL MANPAGE - the long options a tool's --help
lists and those its man page describes (the tag line after each .TP), and
the difference: prints 'help-only: ...' and 'man-only: ...' and exits 1
when they differ. Options named in running text (say another tool's) do
not count: only tags."""
import re, subprocess, sys

OPT = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def help_options(tool):
    out = subprocess.run([tool, "--help"], capture_output=True, text=True, check=True).stdout
    opts = set()
    for line in out.splitlines():
        # option lines are indented and start with a dash; on them, every
        # field (fields are separated by two or more spaces) that starts
        # with a dash names options, e.g. "  -q, --quiet  -v, --verbose"
        if not re.match(r"\s+-", line):
            continue
        for seg in re.split(r"\s{2,}", line.strip()):
            if seg.startswith("-"):
                opts |= set(OPT.findall(seg))
    return opts


def man_options(path):
    lines = open(path).read().splitlines()
    opts = set()
    for i, line in enumerate(lines[:-1]):
        if line.startswith(".TP"):
            tag = lines[i + 1].replace("\\-", "-")
            if tag.startswith("."):
                opts |= set(OPT.findall(tag))
    return opts


def main():
    tool, man = sys.argv[1], sys.argv[2]
    h, m = help_options(tool), man_options(man)
    print("help-only:", " ".join(sorted(h - m)))
    print("man-only:", " ".join(sorted(m - h)))
    return 0 if h == m else 1


if __name__ == "__main__":
    sys.exit(main())
