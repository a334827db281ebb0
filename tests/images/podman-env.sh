# Sourced by build.sh and test.sh: podman, buildah and skopeo with the
# project's own storage and settings, nothing of the machine's.
#
#   . tests/images/podman-env.sh   then podman/buildah/skopeo as usual
#
# Storage: the vfs driver (no overlay mounts, no fuse) under
# ${MOVIEAPP_CACHE:-~/.cache/movieapp}/images/ (IMAGES_STORE).
# Engine: runc with cgroupfs (crun refuses this machine's cgroup layout),
# events to a file (no journald), explicit ulimits (podman's default
# RLIMIT_NOFILE is above the machine's hard limit).
# shellcheck shell=bash

cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
IMAGES_STORE=${IMAGES_STORE:-$cache_root/images}
export IMAGES_STORE
mkdir -p "$IMAGES_STORE/tmp"

cat >"$IMAGES_STORE/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$IMAGES_STORE/storage"
runroot = "$IMAGES_STORE/run"
EOF
cat >"$IMAGES_STORE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$IMAGES_STORE/events.log"
tmp_dir = "$IMAGES_STORE/tmp"
image_default_transport = "containers-storage:"
EOF
# No search registries: an unqualified name is never looked up on a network.
cat >"$IMAGES_STORE/registries.conf" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
export CONTAINERS_STORAGE_CONF=$IMAGES_STORE/storage.conf
export CONTAINERS_CONF=$IMAGES_STORE/containers.conf
export CONTAINERS_REGISTRIES_CONF=$IMAGES_STORE/registries.conf
export BUILDAH_ISOLATION=chroot
export TMPDIR=$IMAGES_STORE/tmp

# Installs what is missing, from Debian, as CI (a clean clone of this
# machine type, as root) needs it.
images_install_tools() {
  local tool missing=()
  for tool in podman buildah runc mmdebstrap skopeo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { echo "podman-env.sh: ${missing[*]} missing; install them (apt-get install podman buildah runc mmdebstrap skopeo) or run as root" >&2; return 1; }
  echo ">> apt-get install ${missing[*]} (first time only)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman buildah runc mmdebstrap skopeo >&2
}
