#!/usr/bin/env bash
# The images built here (tests/images/build.sh), run and published:
#
#   - each image is what the Dockerfile promises: user 65532:65532, its one
#     ENTRYPOINT and CMD, the CA bundle at /etc/ssl/certs/ca-certificates.crt,
#     no shell;
#   - each runs under the Pod constraints the chart (operator) and the
#     operator (api-worker Deployment) write: runAsUser/runAsGroup 65532,
#     fsGroup 65532, readOnlyRootFilesystem, capabilities drop ALL,
#     allowPrivilegeEscalation false, seccomp RuntimeDefault (podman's default
#     profile), the worker's /tmp emptyDir; podman with runc and cgroupfs.
#     The kernel's view of the process is checked (/proc/<pid>/status and
#     mountinfo), then /healthz: the api-worker on its public and admin
#     ports (AWS = moto, TMDB = the local stub), the operator on its metrics
#     port, against the local control plane, and /readyz once it serves;
#   - both are pushed to the local OCI registry (tests/delivery/oci-registry.sh)
#     and pulled back by digest; the api-worker's manifest, byte for byte as
#     the registry serves it, is recorded in moto's ECR (PutImage), and ECR's
#     digest equals the registry's.
#
# Needs the local environment (make env-up) and root. The containers share
# the host's network namespace (no CNI here); the constraints checked are
# the security context's. Last line: "N passed, F failed".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
[ -f .localenv/env.sh ] || { echo "FAIL - the local environment is not up (make env-up)"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck source=/dev/null
. .localenv/env.sh

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }

# ---- build (or reuse) both images
started=$SECONDS
if ! exports=$(bash "$here/build.sh"); then
  fail "tests/images/build.sh"
  finish
fi
eval "$exports"
pass "both images built or reused by content ($((SECONDS - started)) s): $API_WORKER_IMAGE, $OPERATOR_IMAGE"
# shellcheck source=tests/images/podman-env.sh
. "$here/podman-env.sh"

work=$(mktemp -d "$IMAGES_STORE/tmp/test.XXXXXX")
containers=()
cleanup() {
  local c
  for c in "${containers[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# ---- what each image holds
for image in "$API_WORKER_IMAGE" "$OPERATOR_IMAGE"; do
  name=${image##*/}; name=${name%%:*}
  config=$(podman image inspect --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}' "$image")
  case "$name" in
    api-worker) want='65532:65532|["/usr/local/bin/api-worker"]|["serve"]' ;;
    movieapp-operator) want='65532:65532|["/usr/local/bin/movieapp-operator"]|["run"]' ;;
  esac
  if [ "$config" = "$want" ]; then pass "$name: user, ENTRYPOINT and CMD as the Dockerfile says ($config)"; else fail "$name: image config $config, want $want"; fi
  mnt=$(podman image mount "$image")
  if [ -s "$mnt/etc/ssl/certs/ca-certificates.crt" ] && [ "$(stat -c %a "$mnt/etc/ssl/certs/ca-certificates.crt")" = 644 ]; then
    pass "$name: CA bundle /etc/ssl/certs/ca-certificates.crt, readable by 65532 ($(grep -c 'BEGIN CERTIFICATE' "$mnt/etc/ssl/certs/ca-certificates.crt") certificates)"
  else
    fail "$name: no readable /etc/ssl/certs/ca-certificates.crt"
  fi
  if [ ! -e "$mnt/bin/sh" ] && [ ! -e "$mnt/usr/bin/sh" ] && [ ! -e "$mnt/usr/bin/apt-get" ]; then
    pass "$name: no shell, no package manager"
  else
    fail "$name: the runtime image has a shell or apt-get"
  fi
  if grep -q '^nonroot:x:65532:65532:' "$mnt/etc/passwd" && [ -e "$mnt/usr/share/zoneinfo/UTC" ]; then
    pass "$name: user nonroot (65532) and tzdata"
  else
    fail "$name: /etc/passwd without nonroot 65532 or no tzdata"
  fi
  podman image unmount "$image" >/dev/null
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The Pod's constraints, as podman flags (see the header).
pod_flags=(
  --network host
  --user 65532:65532 --group-add 65532
  --read-only --read-only-tmpfs=false
  --cap-drop ALL
  --security-opt no-new-privileges
  --security-opt seccomp=/usr/share/containers/seccomp.json
)

# Asserts what the kernel says about the container's process.
check_process() {
  local name=$1 container=$2 pid status
  pid=$(podman inspect --format '{{.State.Pid}}' "$container")
  status=$(cat "/proc/$pid/status")
  local uid gid capeff capbnd nnp seccomp
  uid=$(awk '/^Uid:/ {print $2 "/" $3}' <<<"$status")
  gid=$(awk '/^Gid:/ {print $2 "/" $3}' <<<"$status")
  capeff=$(awk '/^CapEff:/ {print $2}' <<<"$status")
  capbnd=$(awk '/^CapBnd:/ {print $2}' <<<"$status")
  nnp=$(awk '/^NoNewPrivs:/ {print $2}' <<<"$status")
  seccomp=$(awk '/^Seccomp:/ {print $2}' <<<"$status")
  if [ "$uid" = 65532/65532 ] && [ "$gid" = 65532/65532 ] && [ "$capeff" = 0000000000000000 ] \
    && [ "$capbnd" = 0000000000000000 ] && [ "$nnp" = 1 ] && [ "$seccomp" = 2 ]; then
    pass "$name: runs as 65532:65532, no capabilities (effective and bounding), no_new_privs, seccomp filter"
  else
    fail "$name: uid $uid gid $gid CapEff $capeff CapBnd $capbnd NoNewPrivs $nnp Seccomp $seccomp"
  fi
  if awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | grep -qE '(^|,)ro(,|$)'; then
    pass "$name: root filesystem mounted read-only"
  else
    fail "$name: root filesystem is writable"
  fi
}

# Waits for a URL to answer 200; prints the body.
wait_ok() {
  local url=$1 body
  for _ in $(seq 1 100); do
    if body=$(curl -fsS --max-time 2 "$url" 2>/dev/null); then echo "$body"; return 0; fi
    sleep 0.2
  done
  return 1
}

# ---- the api-worker, as the operator's Deployment runs it
api_port=$(free_port) admin_port=$(free_port)
started=$SECONDS
worker=$(podman run -d "${pod_flags[@]}" \
  --tmpfs /tmp:rw,size=64m,mode=1777 \
  -e PORT="$api_port" -e LISTEN_ADDR=127.0.0.1 -e ADMIN_ADDR="127.0.0.1:$admin_port" \
  -e MOVIEAPP_USERS_TABLE=images-test-users -e MOVIEAPP_MOVIES_TABLE=images-test-movies \
  -e MOVIEAPP_WATCHLISTS_TABLE=images-test-watchlists \
  -e TMDB_BASE_URL -e TMDB_API_KEY \
  -e MOVIEAPP_TOKEN_SIGNING_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  -e AWS_ENDPOINT_URL -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
  "$API_WORKER_IMAGE")
containers+=("$worker")
if body=$(wait_ok "http://127.0.0.1:$api_port/healthz") && wait_ok "http://127.0.0.1:$admin_port/healthz" >/dev/null; then
  pass "api-worker serve: /healthz answers on the public and admin ports ($body, $((SECONDS - started)) s from podman run)"
else
  fail "api-worker serve: no /healthz; log: $(podman logs "$worker" 2>&1 | tail -n 5)"
fi
check_process api-worker "$worker"

# ---- the operator, as the chart's Deployment runs it (no volume: nothing
# to write), with a self-contained kubeconfig readable by 65532 only, as a
# mounted Secret would be
mkdir -p "$work/kube"
"$LOCALENV_VENV/bin/python" - "$KUBECONFIG" >"$work/kube/config" <<'EOF'
import base64, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
for section, key in (("clusters", "cluster"), ("users", "user")):
    for entry in config[section]:
        for field in ("certificate-authority", "client-certificate", "client-key"):
            if field in entry[key]:
                entry[key][field + "-data"] = base64.b64encode(open(entry[key].pop(field), "rb").read()).decode()
yaml.safe_dump(config, sys.stdout)
EOF
chown -R 65532:65532 "$work/kube"
chmod 0500 "$work/kube"
chmod 0400 "$work/kube/config"
metrics_port=$(free_port)
started=$SECONDS
operator=$(podman run -d "${pod_flags[@]}" \
  -v "$work/kube:/var/run/movieapp-kube:ro" -e KUBECONFIG=/var/run/movieapp-kube/config \
  -e MOVIEAPP_METRICS_ADDR="127.0.0.1:$metrics_port" -e MOVIEAPP_LEADER_ELECT=false \
  -e MOVIEAPP_WATCH_NAMESPACES=movieapp-images-test -e MOVIEAPP_LOG_FORMAT=json \
  -e AWS_ENDPOINT_URL -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
  "$OPERATOR_IMAGE")
containers+=("$operator")
if body=$(wait_ok "http://127.0.0.1:$metrics_port/healthz"); then
  pass "movieapp-operator run: /healthz answers on the metrics port ($body, $((SECONDS - started)) s from podman run)"
else
  fail "movieapp-operator run: no /healthz; log: $(podman logs "$operator" 2>&1 | tail -n 5)"
fi
if wait_ok "http://127.0.0.1:$metrics_port/readyz" >/dev/null; then
  pass "movieapp-operator run: /readyz once it reached the local control plane ($((SECONDS - started)) s)"
else
  fail "movieapp-operator run: never ready; log: $(podman logs "$operator" 2>&1 | tail -n 5)"
fi
check_process movieapp-operator "$operator"
for c in "$worker" "$operator"; do
  if [ "$(podman inspect --format '{{.State.Running}}' "$c")" = true ]; then :; else fail "container $c stopped: $(podman logs "$c" 2>&1 | tail -n 3)"; fi
done

# ---- the local OCI registry, by digest
eval "$(bash tests/delivery/oci-registry.sh start)"
tag=${API_WORKER_IMAGE##*:}
declare -A digests
for image in "$API_WORKER_IMAGE" "$OPERATOR_IMAGE"; do
  name=${image##*/}; name=${name%%:*}
  ref="$OCI_REGISTRY/movieapp/$name:$tag"
  started=$SECONDS
  # Docker v2 schema 2, the media type ECR and every node accept.
  if skopeo copy --quiet --dest-tls-verify=false --format v2s2 --digestfile "$work/$name.digest" \
    "containers-storage:$image" "docker://$ref"; then
    digests[$name]=$(cat "$work/$name.digest")
    pass "$name pushed to $ref (${digests[$name]}, $((SECONDS - started)) s)"
  else
    fail "skopeo copy $image to $ref"
    continue
  fi
  # The manifest as a node pulling by digest receives it.
  curl -fsS -D "$work/$name.headers" -o "$work/$name.manifest" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$OCI_REGISTRY/v2/movieapp/$name/manifests/${digests[$name]}"
  served=$(tr -d '\r' <"$work/$name.headers" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
  computed="sha256:$(sha256sum <"$work/$name.manifest" | cut -d' ' -f1)"
  if [ "$served" = "${digests[$name]}" ] && [ "$computed" = "${digests[$name]}" ]; then
    pass "$name: the registry serves the manifest by digest, and its bytes hash to it"
  else
    fail "$name: pushed ${digests[$name]}, registry says $served, bytes hash to $computed"
  fi
  if skopeo inspect --tls-verify=false --raw "docker://$OCI_REGISTRY/movieapp/$name@${digests[$name]}" >/dev/null \
    && skopeo copy --quiet --src-tls-verify=false "docker://$OCI_REGISTRY/movieapp/$name@${digests[$name]}" "dir:$work/$name.pulled"; then
    pass "$name: pulled back by digest, every layer ($(find "$work/$name.pulled" -type f | wc -l) blobs and manifest)"
  else
    fail "$name: pull by digest from $OCI_REGISTRY"
  fi
done

# ---- ECR (moto): the same manifest, the same digest
if [ -n "${digests[api-worker]:-}" ]; then
  # A repository of this suite's own, emptied first: a rerun records afresh.
  "$LOCALENV_VENV/bin/python" -c '
import boto3
ecr = boto3.client("ecr")
try:
    ecr.delete_repository(repositoryName="movieapp-images-test/api-worker", force=True)
except ecr.exceptions.RepositoryNotFoundException:
    pass'
  if ecr_digest=$("$LOCALENV_VENV/bin/python" tests/localenv/push-image.py \
      --repository movieapp-images-test/api-worker --tag "$tag" --manifest "$work/api-worker.manifest"); then
    if [ "$ecr_digest" = "${digests[api-worker]}" ]; then
      pass "ECR (moto) records the api-worker's manifest with the registry's digest ($ecr_digest)"
    else
      fail "ECR's digest $ecr_digest differs from the registry's ${digests[api-worker]}"
    fi
    if "$LOCALENV_VENV/bin/python" - "$tag" "$work/api-worker.manifest" "${digests[api-worker]}" <<'EOF'
import hashlib, sys, boto3
tag, path, digest = sys.argv[1], sys.argv[2], sys.argv[3]
image = boto3.client("ecr").batch_get_image(
    repositoryName="movieapp-images-test/api-worker", imageIds=[{"imageTag": tag}],
    acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json"],
)["images"][0]
body = image["imageManifest"].encode()
sys.exit(0 if body == open(path, "rb").read()
         and "sha256:" + hashlib.sha256(body).hexdigest() == digest
         and image["imageId"]["imageDigest"] == digest else 1)
EOF
    then
      pass "ECR (moto) returns the manifest byte for byte by tag (BatchGetImage), its bytes hashing to the registry's digest"
    else
      fail "ECR (moto) returns a different manifest than the registry"
    fi
  else
    fail "push-image.py --manifest (PutImage into moto)"
  fi
fi

finish
