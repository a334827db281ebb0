#!/usr/bin/env python3
"""Renders the krew manifest template (plugin.yaml) for a release: fills in
{{VERSION}} and, for each platform, {{SHA256 os/arch}} with the sha256 of the
archive its uri names, read from DIST (scripts/package-plugin.sh made them).

Usage: krew-manifest.py --version X.Y.Z --dist DIR [--platforms os/arch,...] [--out FILE]

Every platform of the template needs its archive, unless --platforms names
the ones to keep (the others are left out of the output: the tests build only
this machine's). Text in, text out: no YAML library is needed on the release
runner. Exit status 1 with a message when an archive is missing or a
placeholder is left.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_START = "    - selector:"


def fail(message: str) -> None:
    print(f"krew-manifest.py: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="X.Y.Z, the release's version")
    parser.add_argument("--dist", required=True, type=Path, help="where the archives are")
    parser.add_argument("--platforms", help="os/arch,... to keep (default: all of the template's)")
    parser.add_argument("--template", type=Path, default=ROOT / "plugin.yaml")
    parser.add_argument("--out", type=Path, help="default: standard output")
    args = parser.parse_args()
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", args.version):
        fail(f"--version must be X.Y.Z, not {args.version!r}")

    text = args.template.read_text()
    head, *platforms = text.split(PLATFORM_START)
    # The template's leading comment is for the template only.
    head = "".join(line for line in head.splitlines(keepends=True) if not line.startswith("#"))
    wanted = set(args.platforms.split(",")) if args.platforms else None
    kept = []
    for block in platforms:
        block = PLATFORM_START + block
        os_ = re.search(r"^\s+os: (\S+)$", block, re.M)
        arch = re.search(r"^\s+arch: (\S+)$", block, re.M)
        if not os_ or not arch:
            fail(f"a platform without os and arch labels:\n{block}")
        platform = f"{os_.group(1)}/{arch.group(1)}"
        if wanted is not None and platform not in wanted:
            continue
        block = block.replace("{{VERSION}}", args.version)
        uri = re.search(r"^\s+uri: (\S+)$", block, re.M)
        if not uri:
            fail(f"platform {platform} has no uri")
        archive = args.dist / uri.group(1).rsplit("/", 1)[-1]
        if not archive.is_file():
            fail(f"the archive of {platform} is missing: {archive} (scripts/package-plugin.sh makes it)")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        block = block.replace("{{SHA256 %s}}" % platform, digest)
        kept.append(block)
    if wanted is not None and len(kept) != len(wanted):
        fail(f"--platforms {args.platforms} names platforms the template does not have")
    if not kept:
        fail("no platform left")
    rendered = head.replace("{{VERSION}}", args.version) + "".join(kept)
    if not rendered.endswith("\n"):
        rendered += "\n"
    left = re.findall(r"\{\{[^}]*\}\}", rendered)
    if left:
        fail(f"placeholders left in the manifest: {sorted(set(left))}")
    if args.out:
        args.out.write_text(rendered)
    else:
        sys.stdout.write(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
