#!/usr/bin/env bash
# The api-worker image built here, pushed where the real node pulls it: the
# local OCI registry (tests/delivery/oci-registry.sh, started when it does
# not run) under the ECR repository's name, and its manifest recorded in
# moto's ECR byte for byte (push-image.py --manifest), so the digest the
# operator resolves from the tag is the digest the node pulls.
#
#   push-api-worker.sh TAG [--no-cargo]
#
# Builds or reuses the image (tests/images/build.sh, cached by content;
# --no-cargo: the release binaries already built), or pushes
# $API_WORKER_IMAGE when set (a local image name). Pushing another image
# under a TAG already pushed moves the tag in both. Prints `digest=sha256:...`
# and `image=<the local image>`. Needs a running environment (. .localenv/env.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
die() { echo "push-api-worker.sh: $*" >&2; exit 1; }
tag=${1:?usage: push-api-worker.sh TAG [--no-cargo]}
shift
[ -n "${LOCALENV_VENV:-}" ] || die "no environment: source .localenv/env.sh first"

if [ -z "${API_WORKER_IMAGE:-}" ]; then
  eval "$(bash "$here/build.sh" "$@" | grep '^export ')"
fi
eval "$(bash tests/delivery/oci-registry.sh start)"
# shellcheck source=tests/images/podman-env.sh
. "$here/podman-env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# v2s2: the manifest type ECR records for a pushed image.
skopeo copy --quiet --dest-tls-verify=false --format v2s2 --digestfile "$work/digest" \
  "containers-storage:$API_WORKER_IMAGE" "docker://$OCI_REGISTRY/api-worker:$tag" >&2
digest=$(cat "$work/digest")
curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$OCI_REGISTRY/v2/api-worker/manifests/$digest" >"$work/manifest"
ecr_digest=$("$LOCALENV_VENV/bin/python" tests/localenv/push-image.py \
  --repository api-worker --tag "$tag" --manifest "$work/manifest")
[ "$ecr_digest" = "$digest" ] || die "ECR records $ecr_digest for api-worker:$tag, the registry $digest"
echo "digest=$digest"
echo "image=$API_WORKER_IMAGE"
