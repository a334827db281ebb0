#!/usr/bin/env bash
# Builds the api-worker's Lambda package: a zip holding one executable,
# `bootstrap` (the `api-worker-lambda` binary, release profile), for the
# provided.al2023 runtime on x86_64. See docs/lambda.md.
#
#   bash api-worker/lambda/package.sh [--out FILE]
#
# Default FILE: $CARGO_TARGET_DIR/lambda/api-worker-lambda.zip. The zip is
# reproducible (fixed timestamps and modes), so Terraform's source_code_hash
# only changes when the binary does. Before zipping, the script checks that
# the binary needs no glibc newer than Amazon Linux 2023's (2.34) and that it
# starts and refuses an unknown handler, as it would on Lambda.
# The last line is `lambda package: <file> (<size>, sha256 <hex>)`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

# The same target dir as the Makefile, so a `make` run and this script share builds.
cache=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target-$(rustc -vV | sha256sum | cut -c1-12)}

out=$CARGO_TARGET_DIR/lambda/api-worker-lambda.zip
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Lambda's x86_64 architecture. The host toolchain builds it natively; an
# arm64 (Graviton) package would need the aarch64 target and a cross linker,
# which this machine does not have (see docs/lambda.md).
target=x86_64-unknown-linux-gnu
host=$(rustc -vV | sed -n 's/^host: //p')
if [ "$host" != "$target" ]; then
  echo "package.sh: the host is $host; building $target needs a cross toolchain (see docs/lambda.md)" >&2
  exit 1
fi

echo "==> cargo build --release -p api-worker --features lambda --bin api-worker-lambda"
cargo build --locked --release -p api-worker --features lambda --bin api-worker-lambda
binary=$CARGO_TARGET_DIR/release/api-worker-lambda

# Amazon Linux 2023 ships glibc 2.34: a binary linked against newer symbol
# versions would fail on Lambda at start with "version GLIBC_2.xx not found".
max_glibc=2.34
if command -v objdump >/dev/null 2>&1; then
  needed=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  if [ -n "$needed" ] && [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -n1)" != "$max_glibc" ]; then
    echo "package.sh: the binary needs glibc $needed, newer than provided.al2023's $max_glibc" >&2
    objdump -T "$binary" | grep -E "GLIBC_$needed" | head >&2
    exit 1
  fi
  echo "glibc: needs at most $needed (provided.al2023 has $max_glibc)"
else
  echo "note: no objdump; the glibc symbol versions were not checked"
fi

# It starts, reads _HANDLER first and refuses what it does not know, before
# touching the Runtime API: the init path Lambda runs.
smoke=$(mktemp)
trap 'rm -f "$smoke"' EXIT
if env -i _HANDLER=not-a-handler LOG_FORMAT=text "$binary" >"$smoke" 2>&1; then
  echo "package.sh: the binary accepted an unknown handler" >&2
  exit 1
fi
if ! grep -q 'unknown handler "not-a-handler"' "$smoke"; then
  echo "package.sh: the binary did not start as expected:" >&2
  cat "$smoke" >&2
  exit 1
fi
echo "smoke: bootstrap starts and refuses an unknown handler"

mkdir -p "$(dirname "$out")"
python3 - "$binary" "$out" <<'EOF'
import sys, zipfile
binary, out = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.create_system = 3  # Unix, so Lambda honours the mode below
info.external_attr = (0o100755 << 16)
info.compress_type = zipfile.ZIP_DEFLATED
with open(binary, "rb") as f, zipfile.ZipFile(out + ".tmp", "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
EOF
mv "$out.tmp" "$out"

python3 - "$out" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = z.namelist()
    assert names == ["bootstrap"], names
    mode = z.getinfo("bootstrap").external_attr >> 16
    assert mode & 0o111, oct(mode)
EOF

size() { du -h "$1" | cut -f1; }
echo "bootstrap: $(size "$binary") uncompressed"
echo "lambda package: $out ($(size "$out"), sha256 $(sha256sum "$out" | cut -d' ' -f1))"
