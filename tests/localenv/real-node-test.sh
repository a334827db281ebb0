#!/usr/bin/env bash
# The real node's suite (`make test-real-node`; `make test` runs it where
# real-node.sh check passes): the api-worker image built here (tests/images/build.sh), pushed to
# the local OCI registry under the ECR repository's name and recorded in
# moto's ECR with the identical manifest, runs as a Deployment on the real
# node by digest through the ECR host, under the operator's security context
# (non-root 65532, read-only root filesystem, no capabilities, no privilege
# escalation, seccomp RuntimeDefault), and becomes Ready through its own
# /readyz probe; /healthz answers at the Pod's IP; kubectl logs, exec and
# port-forward reach it through kube-apiserver and the kubelet. Then the
# operator (this checkout's, --worker-dedicated-nodes): a MovieApp's worker
# Pod on the real node from the ECR tag's digest, the web page through a
# port-forward in headless Chromium (api-worker/tests/browser), and a moved
# tag (another image pushed to the registry and ECR under it) rolled out.
#
# Needs a running environment; starts the OCI registry and the real node
# when they do not run (leaves them running; `make real-node-down` or
# `make env-down` stops them).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
[ -f .localenv/env.sh ] || { echo "real-node-test.sh: run make env-up first" >&2; exit 1; }
# shellcheck source=/dev/null
. .localenv/env.sh
ns=real-node-test
failed=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failed=1; }

bash tests/localenv/real-node.sh up
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pushed=$(bash tests/images/push-api-worker.sh real-node-test --no-cargo)
digest=$(sed -n 's/^digest=//p' <<<"$pushed"); image=$(sed -n 's/^image=//p' <<<"$pushed")
pass "ECR (moto) records the registry's manifest ($digest)"
account=$(sed -n 's/^ECR_HOST=\([0-9]*\)\..*/\1/p' tests/localenv/real-node.sh)

# The worker's AWS resources in moto (its /readyz checks them).
"$LOCALENV_VENV/bin/python" - <<'EOF'
import boto3
ddb = boto3.client("dynamodb")
existing = ddb.list_tables()["TableNames"]
for table in ("real-node-test-users", "real-node-test-movies", "real-node-test-watchlists"):
    if table not in existing:
        ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
boto3.client("sqs").create_queue(QueueName="real-node-test-jobs")
boto3.client("sns").create_topic(Name="real-node-test")
EOF

gw=10.244.50.1
aws_port=${AWS_ENDPOINT_URL##*:}; tmdb_port=${TMDB_BASE_URL##*:}
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" create secret generic worker \
  --from-literal=tmdb="$TMDB_API_KEY" --from-literal=signing="$(head -c 32 /dev/urandom | base64)" >/dev/null
started=$SECONDS
kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  replicas: 1
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      automountServiceAccountToken: false
      nodeSelector: {movieapp.io/real-node: "true"}
      tolerations: [{key: movieapp.io/real-node, operator: Exists, effect: NoSchedule}]
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: api
        image: $account.dkr.ecr.us-east-1.amazonaws.com/api-worker@$digest
        args: [serve]
        env:
        - {name: TMDB_API_KEY, valueFrom: {secretKeyRef: {name: worker, key: tmdb}}}
        - {name: MOVIEAPP_TOKEN_SIGNING_KEY, valueFrom: {secretKeyRef: {name: worker, key: signing}}}
        - {name: PORT, value: "8080"}
        - {name: ADMIN_ADDR, value: "0.0.0.0:9090"}
        - {name: MOVIEAPP_USERS_TABLE, value: real-node-test-users}
        - {name: MOVIEAPP_MOVIES_TABLE, value: real-node-test-movies}
        - {name: MOVIEAPP_WATCHLISTS_TABLE, value: real-node-test-watchlists}
        - {name: MOVIEAPP_JOBS_QUEUE_URL, value: "http://$gw:$aws_port/$account/real-node-test-jobs"}
        - {name: MOVIEAPP_NOTIFICATIONS_TOPIC_ARN, value: "arn:aws:sns:us-east-1:$account:real-node-test"}
        - {name: AWS_REGION, value: us-east-1}
        - {name: AWS_ENDPOINT_URL, value: "http://$gw:$aws_port"}
        - {name: AWS_ACCESS_KEY_ID, value: testing}
        - {name: AWS_SECRET_ACCESS_KEY, value: testing}
        - {name: TMDB_BASE_URL, value: "http://$gw:$tmdb_port"}
        ports: [{name: http, containerPort: 8080}, {name: admin, containerPort: 9090}]
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: tmp, mountPath: /tmp}]
        livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3}
        readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 3}
      volumes: [{name: tmp, emptyDir: {sizeLimit: 64Mi}}]
EOF
if kubectl -n "$ns" rollout status deploy/worker --timeout=120s >/dev/null; then
  pass "the worker Deployment is Ready on the real node through its probes ($((SECONDS - started)) s from apply)"
else
  fail "the worker Deployment is not Ready after 120 s"
  kubectl -n "$ns" describe pods | tail -20
fi
pod_ip=$(kubectl -n "$ns" get pods -l app=worker -o jsonpath='{.items[0].status.podIP}')
node=$(kubectl -n "$ns" get pods -l app=worker -o jsonpath='{.items[0].spec.nodeName}')
image_id=$(kubectl -n "$ns" get pods -l app=worker -o jsonpath='{.items[0].status.containerStatuses[0].imageID}')
[ "$node" = movieapp-node-0 ] && pass "the Pod runs on the real node" || fail "the Pod runs on $node"
case "$image_id" in *"$digest") pass "the node runs the image by digest ($image_id)" ;;
  *) fail "the node runs $image_id, not $digest" ;; esac
curl -fsS --max-time 5 "http://$pod_ip:8080/healthz" >/dev/null && pass "/healthz answers at the Pod's IP ($pod_ip)" \
  || fail "/healthz at $pod_ip"

# Through kube-apiserver to the kubelet (its InternalIP, the apiserver's
# kubelet client certificate, the kubelet's webhook authorization).
pod=$(kubectl -n "$ns" get pods -l app=worker -o jsonpath='{.items[0].metadata.name}')
if kubectl -n "$ns" logs "$pod" --tail=50 2>"$work/logs.err" | grep -q .; then
  pass "kubectl logs reads the Pod's log through the kubelet"
else
  fail "kubectl logs: $(tail -2 "$work/logs.err")"
fi
# The image has no shell: the api-worker binary itself is what exec runs.
if out=$(kubectl -n "$ns" exec "$pod" -c api -- /usr/local/bin/api-worker --version 2>&1) && [[ $out == api-worker* ]]; then
  pass "kubectl exec runs in the container ($out)"
else
  fail "kubectl exec: $out"
fi
forward_port=$((LOCALENV_PORT_BASE + 13))
kubectl -n "$ns" port-forward "pod/$pod" "$forward_port:8080" >"$work/forward.log" 2>&1 &
forward=$!
ok=0
for _ in $(seq 50); do
  curl -fsS --max-time 2 "http://127.0.0.1:$forward_port/healthz" >/dev/null 2>&1 && { ok=1; break; }
  sleep 0.2
done
kill "$forward" 2>/dev/null; wait "$forward" 2>/dev/null || true
[ "$ok" = 1 ] && pass "kubectl port-forward reaches the Pod (127.0.0.1:$forward_port -> :8080)" \
  || fail "kubectl port-forward: $(tail -3 "$work/forward.log")"
[ "${KEEP:-0}" = 1 ] || kubectl delete namespace "$ns" --wait=false >/dev/null

# ---- The operator on real Pods: a MovieApp's worker from its ECR tag, the
# web page through a port-forward in headless Chromium, then the tag moved to
# another image (registry and ECR) and the rollout.
app_ns=real-node-app
operator_port=$((LOCALENV_PORT_BASE + 14))
page_port=$((LOCALENV_PORT_BASE + 15))
tag=real-node-moved
cargo build --quiet --locked -p movieapp-operator --bin movieapp-operator
operator_bin=${CARGO_TARGET_DIR:-target}/debug/movieapp-operator
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/movieapps.movieapp.io --timeout=30s >/dev/null
bash tests/localenv/localenv.sh stop real-node-test-operator >/dev/null 2>&1 || true
bash tests/localenv/localenv.sh start real-node-test-operator --probe "http://127.0.0.1:$operator_port/readyz" -- \
  "$operator_bin" run --metrics-addr "127.0.0.1:$operator_port" --namespaces "$app_ns" \
  --aws-endpoint-url "$AWS_ENDPOINT_URL" --worker-aws-endpoint-url "http://$gw:$aws_port" \
  --worker-tmdb-base-url "http://$gw:$tmdb_port" --worker-dedicated-nodes movieapp.io/real-node=true \
  --resync-interval 5s >/dev/null
# The tag starts at the image built here (moved back there after an earlier run).
first=$(API_WORKER_IMAGE=$image bash tests/images/push-api-worker.sh "$tag" | sed -n 's/^digest=//p')
kubectl create namespace "$app_ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$app_ns" create secret generic tmdb --from-literal=api-key="$TMDB_API_KEY" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
started=$SECONDS
kubectl -n "$app_ns" apply -f - >/dev/null <<YAML
apiVersion: movieapp.io/v1alpha1
kind: MovieApp
metadata: {name: moved}
spec:
  region: us-east-1
  deletionPolicy: Delete
  worker:
    image: {repository: api-worker, tag: $tag}
    replicas: 1
    tmdb: {apiKeySecretRef: {name: tmdb, key: api-key}}
    # Any credentials do for moto (on EKS: the worker's IAM role).
    env: [{name: AWS_ACCESS_KEY_ID, value: testing}, {name: AWS_SECRET_ACCESS_KEY, value: testing}]
YAML
# The digests the Ready containers of the MovieApp's Pods run, one a line.
running_digests() {
  kubectl -n "$app_ns" get pods -l app.kubernetes.io/instance=moved -o json | python3 -c '
import json, sys
for pod in json.load(sys.stdin)["items"]:
    for c in pod.get("status", {}).get("containerStatuses", []):
        if c.get("ready"):
            print(c["imageID"].rsplit("@", 1)[-1])' | sort -u
}
if kubectl -n "$app_ns" wait movieapp/moved --for=condition=Ready --timeout=180s >/dev/null; then
  pass "the operator's MovieApp is Ready, its worker Pod on the real node Ready ($((SECONDS - started)) s from apply)"
else
  fail "the MovieApp is not Ready after 180 s: $(kubectl -n "$app_ns" get movieapp moved -o jsonpath='{.status.conditions}')"
fi
if [ "$(running_digests)" = "$first" ]; then
  pass "its Pod runs the tag's image by digest ($first)"
else
  fail "its Pods run $(running_digests | tr '\n' ' '), not $first"
fi
node=$(kubectl -n "$app_ns" get pods -l app.kubernetes.io/instance=moved -o jsonpath='{.items[0].spec.nodeName}')
[ "$node" = movieapp-node-0 ] && pass "the operator put it on the real node (--worker-dedicated-nodes)" \
  || fail "it runs on $node"

# The page through a port-forward to the Service, in Chromium.
kubectl -n "$app_ns" port-forward svc/moved "$page_port:80" >"$work/page-forward.log" 2>&1 &
forward=$!
for _ in $(seq 50); do curl -fsS --max-time 2 "http://127.0.0.1:$page_port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
if APP_URL="http://127.0.0.1:$page_port" bash api-worker/tests/browser/run.sh >"$work/browser.log" 2>&1; then
  pass "the web page works in headless Chromium through kubectl port-forward (search, details, sign-up, watchlist)"
else
  fail "the web page in Chromium: $(tail -5 "$work/browser.log")"
fi
kill "$forward" 2>/dev/null; wait "$forward" 2>/dev/null || true

# Another image under the same tag: a label makes another manifest and digest.
# shellcheck source=tests/images/podman-env.sh
. tests/images/podman-env.sh
variant=localhost/movieapp/api-worker:real-node-moved
container=$(buildah from --quiet --pull=false "$image")
buildah config --label "movieapp.io/variant=moved-$(date +%s)" "$container"
buildah commit --quiet --rm "$container" "$variant" >/dev/null
moved=$(API_WORKER_IMAGE=$variant bash tests/images/push-api-worker.sh "$tag" | sed -n 's/^digest=//p')
started=$SECONDS
rolled=0
while [ $((SECONDS - started)) -lt 120 ]; do
  [ "$(running_digests)" = "$moved" ] && { rolled=1; break; }
  sleep 1
done
if [ "$rolled" = 1 ]; then
  pass "the moved tag rolled out: the Ready Pod runs $moved ($((SECONDS - started)) s from the push; resync every 5 s)"
else
  fail "after 120 s the Ready Pods run $(running_digests | tr '\n' ' '), not the moved tag's $moved"
fi
image_ref=$(kubectl -n "$app_ns" get deploy moved -o jsonpath='{.spec.template.spec.containers[0].image}')
[[ $image_ref == *"@$moved" ]] && pass "the Deployment names the new digest ($image_ref)" \
  || fail "the Deployment names $image_ref"
podman rmi --force "$variant" >/dev/null 2>&1 || true

if [ "${KEEP:-0}" != 1 ]; then
  kubectl -n "$app_ns" delete movieapp moved --timeout=60s >/dev/null || fail "the MovieApp was not deleted within 60 s"
  kubectl delete namespace "$app_ns" --wait=false >/dev/null
  bash tests/localenv/localenv.sh stop real-node-test-operator >/dev/null || true
fi
exit "$failed"
