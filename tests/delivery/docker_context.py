#!/usr/bin/env python3
"""The Docker build context of the repository, as `docker build .` sends it:
every file not excluded by .dockerignore.

    docker_context.py list            print the context's files
    docker_context.py sync DEST       make DEST hold exactly those files

There is no container engine on the machines that run `make test`, so
build-release.sh builds from a synced copy of the context instead: a file the
Dockerfile's build needs but .dockerignore leaves out breaks that build too.

The matching follows moby/patternmatcher, which `docker build` uses: patterns
are cleaned paths (a leading or trailing "/" is dropped), `*` and `?` never
cross "/", `**` crosses any number of directories, a pattern that matches a
directory matches everything below it, `!` re-includes, and the last matching
pattern wins.
"""

from __future__ import annotations

import filecmp
import os
import posixpath
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    # "**/" matches zero or more whole directories.
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def read_patterns(root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    path = root / ".dockerignore"
    patterns = []
    if not path.exists():
        return patterns
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:].strip()
        line = posixpath.normpath(line.lstrip("/"))
        if line == ".":
            continue
        patterns.append((negated, glob_to_regex(line)))
    return patterns


def excluded(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parents = []
    parent = posixpath.dirname(path)
    while parent:
        parents.append(parent)
        parent = posixpath.dirname(parent)
    result = False
    for negated, regex in patterns:
        if regex.match(path) or any(regex.match(p) for p in parents):
            result = not negated
    return result


def context_files(root: Path = ROOT) -> list[str]:
    patterns = read_patterns(root)
    files = []
    for directory, dirs, names in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        dirs.sort()
        for name in sorted(names):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not excluded(rel, patterns) and os.path.isfile(os.path.join(directory, name)):
                files.append(rel)
    return files


def sync(dest: Path, root: Path = ROOT) -> int:
    """Makes dest hold exactly the context; unchanged files keep their mtime
    (so cargo's fingerprints stay valid between runs). Returns files copied."""
    wanted = set(context_files(root))
    dest.mkdir(parents=True, exist_ok=True)
    for directory, dirs, names in os.walk(dest, topdown=False):
        for name in names:
            full = Path(directory) / name
            rel = full.relative_to(dest).as_posix()
            if rel not in wanted:
                full.unlink()
        for name in dirs:
            full = Path(directory) / name
            if full.is_dir() and not any(full.iterdir()):
                full.rmdir()
    copied = 0
    for rel in sorted(wanted):
        src, dst = root / rel, dest / rel
        if dst.exists() and filecmp.cmp(src, dst, shallow=False):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        copied += 1
    return copied


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "list":
        print("\n".join(context_files()))
        return 0
    if len(argv) == 3 and argv[1] == "sync":
        copied = sync(Path(argv[2]))
        print(f"synced {len(context_files())} files ({copied} changed) into {argv[2]}", file=sys.stderr)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
