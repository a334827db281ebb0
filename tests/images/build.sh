#!/usr/bin/env bash
# The project's two images (api-worker, movieapp-operator), built here from
# the Dockerfile with buildah, without a Docker engine and without pulling
# from any image registry:
#
#   RUNTIME_IMAGE  a base assembled with mmdebstrap from the Debian packages of
#                  base-packages (glibc, libgcc, CA certificates, tzdata) and
#                  user 65532 "nonroot", standing in for distroless/cc-debian12
#   BINARIES       an image holding /out/ with the release binaries that
#                  tests/delivery/build-release.sh builds (the Dockerfile's
#                  `cargo build` line, from the same Docker context), in place
#                  of the Dockerfile's builder stage, whose rust image cannot
#                  be pulled here. The release pipeline keeps the full
#                  multi-stage build (BINARIES left at its default).
#
#   build.sh             build (or reuse) both images; the last lines are
#                        `export API_WORKER_IMAGE=...` and `export OPERATOR_IMAGE=...`
#   build.sh --no-cargo  take the binaries already in $CARGO_TARGET_DIR/release
#
# Cached by content: the images' tag is a key from the binaries' hashes, the
# Dockerfile, base-packages and this script; a run with the same inputs
# reuses them. The base is keyed by base-packages and this script (not by the
# Debian archive's state: change base-packages or delete the store to pick up
# Debian updates). Storage (vfs driver) and the podman/buildah settings live
# in ${MOVIEAPP_CACHE:-~/.cache/movieapp}/images/ (see podman-env.sh).
#
# Needs root (as CI runs): installs podman, buildah, runc, mmdebstrap and
# skopeo with apt-get when one is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# shellcheck source=tests/images/podman-env.sh
. "$here/podman-env.sh"

run_cargo=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-cargo) run_cargo=0; shift ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { echo ">> $*" >&2; }
die() { echo "build.sh: $*" >&2; exit 1; }

images_install_tools

mkdir -p "$IMAGES_STORE"
exec 9>"$IMAGES_STORE/.build.lock"
flock 9

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR="$cache_root/target-$(rustc -vV | sha256sum | cut -c1-12)"
  export CARGO_TARGET_DIR
fi

# ---- the binaries: build-release.sh's build (a no-op when they are current)
context="$cache_root/delivery-docker-context"
if [ "$run_cargo" = 1 ]; then
  started=$SECONDS
  python3 tests/delivery/docker_context.py sync "$context"
  (cd "$context" && cargo build --release --locked -p movieapp-operator -p api-worker) >&2 \
    || die "the release build failed"
  log "release binaries current ($((SECONDS - started)) s)"
fi
operator_bin="$CARGO_TARGET_DIR/release/movieapp-operator"
worker_bin="$CARGO_TARGET_DIR/release/api-worker"
for bin in "$operator_bin" "$worker_bin"; do
  [ -x "$bin" ] || die "$bin is missing: run tests/delivery/build-release.sh (or build.sh without --no-cargo)"
done
# An empty context when there is no synced one: with BINARIES given, no
# stage the images need copies from the context.
[ -d "$context" ] || { context="$IMAGES_STORE/empty-context"; mkdir -p "$context"; }

# ---- the runtime base
base_key=$(cat "$here/base-packages" "$here/build.sh" | sha256sum | cut -c1-16)
base_image="localhost/movieapp/runtime-base:$base_key"
if podman image exists "$base_image"; then
  log "runtime base: $base_image (cached)"
else
  started=$SECONDS
  work=$(mktemp -d "$IMAGES_STORE/.base.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mapfile -t packages < <(sed 's/#.*//; /^[[:space:]]*$/d' "$here/base-packages")
  # The Debian sources this machine's apt uses (deb822 or one-line format).
  sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  # mmdebstrap resolves and downloads the packages (with their dependencies,
  # signatures checked) and keeps the .debs; the base is made of the listed
  # packages only (--skip=cleanup/apt/cache keeps the .debs): their dependencies (debconf, perl-base, openssl for the
  # maintainer scripts) have no place in an image without a shell.
  log "runtime base: mmdebstrap ${packages[*]} (bookworm)"
  mmdebstrap --quiet --variant=extract --skip=cleanup/apt/cache \
    --include="$(IFS=,; echo "${packages[*]}")" \
    bookworm "$work/debs" "$sources" >&2 || die "mmdebstrap failed"
  rootfs="$work/rootfs"
  mkdir -p "$rootfs"
  for package in "${packages[@]}"; do
    deb=$(find "$work/debs/var/cache/apt/archives" -name "${package}_*.deb" | head -n 1)
    [ -n "$deb" ] || die "mmdebstrap did not download $package"
    dpkg-deb -x "$deb" "$rootfs"
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$work/versions"
  done
  # What update-ca-certificates writes from the default configuration (every
  # certificate of the package), without running it.
  mkdir -p "$rootfs/etc/ssl/certs"
  cat "$rootfs"/usr/share/ca-certificates/mozilla/*.crt >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/usr/share/ca-certificates "$rootfs"/usr/sbin "$rootfs"/etc/ca-certificates* \
    "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/info \
    "$rootfs"/usr/share/lintian "$rootfs"/usr/share/locale "$rootfs"/usr/share/common-licenses \
    "$rootfs"/usr/lib/x86_64-linux-gnu/gconv "$rootfs"/usr/share/gcc "$rootfs"/usr/share/base-files \
    "$rootfs"/usr/share/debconf "$rootfs"/usr/share/tzdata "$rootfs"/etc/profile* \
    "$rootfs"/etc/skel "$rootfs"/etc/dpkg "$rootfs"/etc/update-motd.d "$rootfs"/etc/motd \
    "$rootfs"/usr/share/pixmaps "$rootfs"/etc/legal "$rootfs"/etc/issue* "$rootfs"/usr/lib/os-release.d
  # Users as distroless has them: root, nobody and nonroot (65532), no shells.
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
tty:x:5:
EOF
  echo 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
  mkdir -p "$rootfs/tmp" "$rootfs/root" "$rootfs/home/nonroot" "$rootfs/var/lib/dpkg/status.d"
  chmod 1777 "$rootfs/tmp"
  chmod 0700 "$rootfs/root"
  chown 65532:65532 "$rootfs/home/nonroot"
  chmod 0700 "$rootfs/home/nonroot"
  # The versions, where scanners look for them in distroless images.
  cp "$work/versions" "$rootfs/var/lib/dpkg/status.d/packages"
  # The image: one layer, reproducible for the same packages.
  tar --sort=name --mtime=@0 --numeric-owner -C "$rootfs" -cf "$work/rootfs.tar" .
  podman import --quiet \
    --change 'USER 65532:65532' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    "$work/rootfs.tar" "$base_image" >/dev/null || die "podman import failed"
  rm -rf "$work"
  trap - EXIT
  log "runtime base: $base_image ($((SECONDS - started)) s; $(podman image inspect --format '{{.Size}}' "$base_image") bytes)"
fi

# ---- the binaries as an image, and both images from the Dockerfile
bin_key=$(sha256sum "$worker_bin" "$operator_bin" | cut -c1-64 | sha256sum | cut -c1-16)
key=$(printf '%s\n' "$bin_key" "$base_key" "$(sha256sum Dockerfile)" | sha256sum | cut -c1-16)
worker_image="localhost/movieapp/api-worker:$key"
operator_image="localhost/movieapp/movieapp-operator:$key"
if podman image exists "$worker_image" && podman image exists "$operator_image"; then
  log "images: $worker_image, $operator_image (cached)"
else
  started=$SECONDS
  binaries_image="localhost/movieapp/binaries:$bin_key"
  if ! podman image exists "$binaries_image"; then
    container=$(buildah from --quiet scratch)
    buildah copy --quiet --chmod 0555 "$container" "$worker_bin" "$operator_bin" /out/ >/dev/null
    buildah commit --quiet --rm "$container" "$binaries_image" >/dev/null
  fi
  # No REVISION label: the images are keyed by content, not by commit.
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
  for target in api-worker movieapp-operator; do
    image="localhost/movieapp/$target:$key"
    log "buildah bud --target $target (RUNTIME_IMAGE=$base_image, BINARIES=$binaries_image)"
    buildah bud --quiet --isolation chroot --pull=false --layers=false \
      --timestamp 0 \
      --build-arg "RUNTIME_IMAGE=$base_image" \
      --build-arg "BINARIES=$binaries_image" \
      --build-arg "VERSION=$version" \
      --target "$target" -f "$root/Dockerfile" -t "$image" "$context" >/dev/null \
      || die "buildah bud --target $target failed"
  done
  log "images built ($((SECONDS - started)) s)"
fi
# Older keys' images go: each key holds about 130 MB in the vfs store.
podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/movieapp/' \
  | grep -v -e ":$key\$" -e ":$base_key\$" -e ":$bin_key\$" \
  | xargs -r podman rmi --force >/dev/null 2>&1 || true
for image in "$worker_image" "$operator_image"; do
  log "$image: $(podman image inspect --format '{{.Size}}' "$image") bytes"
done
echo "export RUNTIME_BASE_IMAGE=$base_image"
echo "export API_WORKER_IMAGE=$worker_image"
echo "export OPERATOR_IMAGE=$operator_image"
