#!/usr/bin/env bash
# RBAC proven, not assumed: installs the chart on the local control plane
# (make env-up), runs the operator authenticated as the chart's
# ServiceAccount (a TokenRequest token in a kubeconfig of its own), drives a
# MovieApp through create, update and delete, and checks what that identity
# may not do.
#
#   1. `kubectl apply --dry-run=server` of every rendered manifest set (cluster
#      mode, namespaced mode, every optional object on). The ServiceMonitor, PodMonitor
#      and PrometheusRule kinds are validated against the real prometheus-operator
#      CRDs, installed for the test when the cluster lacks them and removed after.
#   2. The chart published as users get it: `helm package`, `helm push` to a
#      real OCI registry on 127.0.0.1 (tests/delivery/oci-registry.sh), and
#      `helm install oci://127.0.0.1:<port>/...` in namespaced mode into a
#      namespace that enforces the restricted Pod Security Standard (kwok runs
#      the Pods: nothing executes, but admission and the rollout are real).
#   3. can-i checks (impersonating the ServiceAccount) for both modes; a real
#      forbidden request with the token; the Applier's request pattern (SSA
#      create, SSA update, get, list, delete) for every child kind, with the token.
#   4. The operator binary with the token: finalizer, status conditions with
#      observedGeneration, the generated Secret, Events, AWS resources in moto,
#      children applied, Ready (checked through the Argo CD health script too),
#      a Stalled update and its repair, deletion with garbage collection; the
#      leader Lease taken and released on SIGTERM.
#   5. The API server's audit log: no request of the operator was denied, and
#      the requests it made are the ones the Role grants.
#
# Everything lives in namespaces named mvd-<random>-*, removed at the end; the
# operator watches only its own test namespace, so other tests are unaffected.
# Exit status non-zero on any failure; the last line is "N passed, F failed".
# MOVIEAPP_OPERATOR_BIN: the binary to test (default: a debug build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
here="$root/tests/delivery"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
# check DESCRIPTION COMMAND...: pass when the command succeeds.
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then pass "$d"; else fail "$d"; fi; }
# eventually SECONDS DESCRIPTION COMMAND...: pass once the command succeeds.
eventually() {
  local timeout=$1 d=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then fail "$d (not within ${timeout}s)"; return 1; fi
    sleep 1
  done
  pass "$d"
}

# 0: running; 2: running, a process of make demo beside it is not healthy.
env_status=0
env_report=$(bash tests/localenv/localenv.sh status 2>&1) || env_status=$?
if [ "$env_status" -ne 0 ] && [ "$env_status" -ne 2 ]; then
  echo "FAIL - the local environment is not running or not healthy (make env-status):"
  echo "$env_report"
  echo "0 passed, 1 failed"
  exit 1
fi
# shellcheck source=/dev/null
. .localenv/env.sh
eval "$(bash "$here/install-tools.sh")"
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache_root/target-$(rustc -vV | sha256sum | cut -c1-12)}
if [ -z "${MOVIEAPP_OPERATOR_BIN:-}" ]; then
  cargo build --quiet --locked -p movieapp-operator
  MOVIEAPP_OPERATOR_BIN="$CARGO_TARGET_DIR/debug/movieapp-operator"
fi

id=$(python3 -c 'import secrets; print(secrets.token_hex(3))')
ns_sys="mvd-$id-system"     # the operator's namespace (release, Lease)
ns_apps="mvd-$id-apps"      # the watched namespace
ns_other="mvd-$id-other"    # not watched
release="mvd-$id"
fullname="$release-movieapp-operator"
sa_user="system:serviceaccount:$ns_sys:$fullname"
cw_release="mvd-$id-cw"     # a cluster-mode rendering, RBAC only
cw_fullname="$cw_release-movieapp-operator"
mr_release="mvd-$id-mr"      # the admission policies with operator.workerRole
cw_user="system:serviceaccount:$ns_sys:$cw_fullname"
chart=charts/movieapp-operator
work=$(mktemp -d)
operator="rbac-e2e-$id-operator"   # the operator process, as the supervisor records it
operator_log="$PWD/.localenv/logs/$operator.log"
created_monitoring_crds=()
repository="mvd-$id/api-worker"

cleanup() {
  set +e
  bash tests/localenv/localenv.sh stop "$operator" >/dev/null 2>&1
  # Without the operator, finalizers would hold the namespaces forever.
  for name in $(kubectl -n "$ns_apps" get movieapps -o name 2>/dev/null); do
    kubectl -n "$ns_apps" patch "$name" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  done
  "$HELM" uninstall "$release" -n "$ns_sys" --wait --timeout 60s >/dev/null 2>&1
  kubectl delete clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding -l "app.kubernetes.io/instance in ($cw_release,$mr_release)" --ignore-not-found >/dev/null 2>&1
  kubectl delete namespace "$ns_sys" "$ns_apps" "$ns_other" --ignore-not-found --wait=false >/dev/null 2>&1
  for crd in "${created_monitoring_crds[@]}"; do kubectl delete crd "$crd" --ignore-not-found >/dev/null 2>&1; done
  AWS_REPOSITORY="$repository" "$LOCALENV_VENV/bin/python" - <<'PY' >/dev/null 2>&1
import os, boto3
boto3.client("ecr").delete_repository(repositoryName=os.environ["AWS_REPOSITORY"], force=True)
PY
  if [ "$failed" -gt 0 ] && [ -f "$operator_log" ]; then
    echo "--- last lines of the operator's log ($operator_log)"
    tail -n 30 "$operator_log"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

echo "# test namespaces: $ns_sys (operator), $ns_apps (watched), $ns_other (not watched)"

# ------------------------------------------------------------ 0. cluster set-up (admin)
kubectl apply --server-side --force-conflicts -f crds/movieapp.io_movieapps.yaml >/dev/null
kubectl wait --for condition=established --timeout=60s crd/movieapps.movieapp.io >/dev/null
for ns in "$ns_sys" "$ns_apps" "$ns_other"; do kubectl create namespace "$ns" >/dev/null; done
kubectl label namespace "$ns_sys" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/warn=restricted >/dev/null
for ns in "$ns_apps" "$ns_other"; do
  kubectl -n "$ns" create secret generic tmdb --from-literal=api-key="$TMDB_API_KEY" >/dev/null
done

for crd in servicemonitors podmonitors prometheusrules; do
  if ! kubectl get crd "$crd.monitoring.coreos.com" >/dev/null 2>&1; then
    kubectl apply --server-side -f "$PROMETHEUS_OPERATOR_CRDS/monitoring.coreos.com_$crd.yaml" >/dev/null
    created_monitoring_crds+=("$crd.monitoring.coreos.com")
  fi
done
[ ${#created_monitoring_crds[@]} -eq 0 ] || kubectl wait --for condition=established --timeout=60s \
  "${created_monitoring_crds[@]/#/crd/}" >/dev/null

# ------------------------------------------------------------ 1. server-side dry run
dry_run() {
  local description=$1; shift
  local out
  if out=$("$HELM" template "$release" "$chart" -n "$ns_sys" --include-crds "$@" 2>&1 \
      | kubectl apply --dry-run=server -f - 2>&1); then
    pass "kubectl apply --dry-run=server: $description ($(grep -c 'dry run' <<<"$out") objects)"
  else
    fail "kubectl apply --dry-run=server: $description"; echo "$out" | tail -n 5
  fi
}
dry_run "default values (cluster mode)"
dry_run "namespaced mode" --set "watchNamespaces={$ns_apps,$ns_other}"
dry_run "every optional object (ServiceMonitor, the workers' PodMonitor, PrometheusRule, NetworkPolicy, the Grafana dashboard ConfigMap, IRSA, digest, 3 replicas)" \
  -f "$here/values/full.yaml" --set "leaderElection.namespace=$ns_sys"
dry_run "one replica without leader election" -f "$here/values/single-replica.yaml"
# The base's own Namespace does not exist (a dry run creates nothing), so
# dry-run it through an overlay that moves it into the test's namespace.
mkdir -p "$work/overlay"
cat >"$work/overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $ns_sys
resources: [$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$root/deploy" "$work/overlay")]
EOF
if out=$(kubectl apply --dry-run=server -k "$work/overlay" 2>&1); then
  pass "kubectl apply --dry-run=server -k deploy/ (the Kustomize base, through a namespace overlay; $(grep -c 'dry run' <<<"$out") objects)"
else
  fail "kubectl apply --dry-run=server -k deploy/"; echo "$out" | tail -n 5
fi

# ------------------------------------------------------------ 2. publish to OCI, install from it (namespaced mode)
eval "$(bash "$here/oci-registry.sh" start)"
chart_version=$(sed -n 's/^version: *//p' "$chart/Chart.yaml")
chart_ref="oci://$OCI_REGISTRY/$release/charts/movieapp-operator"
if "$HELM" package "$chart" --destination "$work" >"$work/package.log" 2>&1 \
    && "$HELM" push "$work/movieapp-operator-$chart_version.tgz" "oci://$OCI_REGISTRY/$release/charts" --plain-http >"$work/push.log" 2>&1; then
  pass "helm package + helm push to the OCI registry at $OCI_REGISTRY ($(sed -n 's/^Digest: //p' "$work/push.log"))"
else
  fail "helm package + helm push"; cat "$work/package.log" "$work/push.log" | tail -n 20; finish; exit 1
fi
# What the registry holds is a Helm chart artifact, found by its tag.
manifest=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$OCI_REGISTRY/v2/$release/charts/movieapp-operator/manifests/$chart_version" || true)
check "the registry serves the chart as an OCI artifact (config application/vnd.cncf.helm.config.v1+json, tag $chart_version)" \
  python3 -c 'import json,sys; m=json.loads(sys.argv[1]); assert m["config"]["mediaType"]=="application/vnd.cncf.helm.config.v1+json"; assert m["layers"][0]["mediaType"]=="application/vnd.cncf.helm.chart.content.v1.tar+gzip"' "$manifest"
if "$HELM" install "$release" "$chart_ref" --version "$chart_version" --plain-http -n "$ns_sys" --skip-crds \
    --set "watchNamespaces={$ns_apps}" --wait --timeout 120s >"$work/helm.log" 2>&1; then
  pass "helm install $chart_ref --version $chart_version (namespaced mode) into a namespace enforcing the restricted Pod Security Standard; rollout complete"
else
  fail "helm install from $chart_ref"; tail -n 20 "$work/helm.log"; finish; exit 1
fi
check "the release's chart is the one pulled from the registry ($chart_version)" \
  bash -c "'$HELM' list -n '$ns_sys' -o json | python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x[\"name\"]==\"$release\"]; assert r and r[0][\"chart\"]==\"movieapp-operator-$chart_version\"'"
check "the operator's Pods were admitted under Pod Security 'restricted'" \
  test "$(kubectl -n "$ns_sys" get pods -l "app.kubernetes.io/instance=$release" -o name | wc -l)" -eq 2
# The release's MovieApp admission policies judge only the namespaces it
# watches: another release's MovieApps (here: the unwatched namespace) are
# not its to refuse. A MovieApp naming a pre-made worker role, which this
# release's admission.workerRoleArns (empty) allows nowhere; server-side dry
# runs, so nothing is stored.
role_probe() {
  kubectl apply --dry-run=server -f - 2>&1 <<EOF
apiVersion: movieapp.io/v1alpha1
kind: MovieApp
metadata: { name: role-probe, namespace: $1 }
spec:
  region: us-east-1
  worker:
    image: { repository: $repository, tag: "1.0.0" }
    tmdb: { apiKeySecretRef: { name: tmdb, key: api-key } }
    serviceAccount:
      annotations: { eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/probe" }
EOF
}
# The API server takes the release's new policy up within a moment, not at once.
refused_unlisted() {
  local out
  out=$(role_probe "$ns_apps" || true)
  grep -q "$fullname-worker-roles" <<<"$out"
}
eventually 30 "the release's worker-roles policy refuses an unlisted role in its watched namespace $ns_apps" \
  refused_unlisted
probe=$(role_probe "$ns_other" || true)
if grep -q "(server dry run)" <<<"$probe"; then
  pass "the release's admission policies leave the MovieApps of the unwatched namespace $ns_other alone"
else
  fail "the same MovieApp in $ns_other, which the release does not watch, was not admitted: $probe"
fi
# With operator.workerRole the operator makes every worker role: a MovieApp
# naming one is refused even where admission.workerRoleArns lists it. A
# release of its own (its admission policies only), bound to $ns_other,
# whose allow-list names the probe's role there.
"$HELM" template "$mr_release" "$chart" -n "$ns_sys" --show-only templates/admission.yaml \
  --set "watchNamespaces={$ns_other}" \
  --set "admission.workerRoleArns.$ns_other={arn:aws:iam::123456789012:role/probe}" \
  --set operator.workerRole.oidcProviderArn=arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/MVD \
  --set operator.workerRole.boundaryArn=arn:aws:iam::123456789012:policy/movieapp-worker-boundary \
  | kubectl apply -f - >/dev/null
refused_as_made() {
  local out
  out=$(role_probe "$ns_other" || true)
  grep -q "makes the worker role of every MovieApp itself.*$mr_release-movieapp-operator-worker-roles" <<<"$out"
}
eventually 30 "operator.workerRole: the worker-roles policy refuses a MovieApp naming a role, even one admission.workerRoleArns lists for its namespace" \
  refused_as_made
kubectl delete validatingadmissionpolicy,validatingadmissionpolicybinding -l "app.kubernetes.io/instance=$mr_release" >/dev/null
"$HELM" template "$cw_release" "$chart" -n "$ns_sys" \
  --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml | kubectl apply -f - >/dev/null

# ------------------------------------------------------------ 3. what the identity may and may not do
can() {
  local user=$1; shift
  if kubectl auth can-i "$@" --as="$user" >/dev/null 2>&1; then pass "may:     $*"; else fail "should be allowed: $*"; fi
}
cannot() {
  local user=$1; shift
  if kubectl auth can-i "$@" --as="$user" >/dev/null 2>&1; then fail "should be denied: $*"; else pass "may not: $*"; fi
}
echo "# namespaced mode ($sa_user)"
can "$sa_user" watch movieapps.movieapp.io -n "$ns_apps"
can "$sa_user" patch movieapps.movieapp.io --subresource=status -n "$ns_apps"
can "$sa_user" update movieapps.movieapp.io --subresource=finalizers -n "$ns_apps"
can "$sa_user" create deployments.apps -n "$ns_apps"
can "$sa_user" delete horizontalpodautoscalers.autoscaling -n "$ns_apps"
can "$sa_user" delete networkpolicies.networking.k8s.io -n "$ns_apps"
can "$sa_user" delete configmaps -n "$ns_apps"
can "$sa_user" get secrets -n "$ns_apps"
can "$sa_user" create events.events.k8s.io -n "$ns_apps"
can "$sa_user" create leases.coordination.k8s.io -n "$ns_sys"
can "$sa_user" update leases.coordination.k8s.io/movieapp-operator-leader -n "$ns_sys"
cannot "$sa_user" get secrets -n "$ns_other"
cannot "$sa_user" list secrets -n "$ns_sys"
cannot "$sa_user" list secrets --all-namespaces
cannot "$sa_user" list movieapps.movieapp.io --all-namespaces
cannot "$sa_user" watch movieapps.movieapp.io -n "$ns_other"
cannot "$sa_user" update secrets -n "$ns_apps"
cannot "$sa_user" delete secrets -n "$ns_apps"
cannot "$sa_user" delete movieapps.movieapp.io -n "$ns_apps"
cannot "$sa_user" update movieapps.movieapp.io -n "$ns_apps"
cannot "$sa_user" update leases.coordination.k8s.io/some-other-lease -n "$ns_sys"
cannot "$sa_user" get leases.coordination.k8s.io -n "$ns_apps"
cannot "$sa_user" create pods -n "$ns_apps"
cannot "$sa_user" create pods --subresource=exec -n "$ns_apps"
cannot "$sa_user" create serviceaccounts --subresource=token -n "$ns_apps"
cannot "$sa_user" create events -n "$ns_apps"
echo "# cluster mode ($cw_user)"
can "$cw_user" list movieapps.movieapp.io --all-namespaces
can "$cw_user" list secrets --all-namespaces
can "$cw_user" create configmaps -n "$ns_other"
cannot "$cw_user" create leases.coordination.k8s.io -n "$ns_other"
cannot "$cw_user" create pods -n "$ns_other"
cannot "$cw_user" list nodes
cannot "$cw_user" create namespaces
for user in "$sa_user" "$cw_user"; do
  mode=$([ "$user" = "$sa_user" ] && echo namespaced || echo cluster)
  echo "# no escalation, no CRD changes ($mode mode)"
  for verb in create update patch delete; do
    cannot "$user" "$verb" customresourcedefinitions.apiextensions.k8s.io
  done
  cannot "$user" create rolebindings.rbac.authorization.k8s.io -n "$ns_apps"
  cannot "$user" create roles.rbac.authorization.k8s.io -n "$ns_apps"
  cannot "$user" create clusterrolebindings.rbac.authorization.k8s.io
  cannot "$user" escalate roles.rbac.authorization.k8s.io -n "$ns_apps"
  cannot "$user" bind clusterroles.rbac.authorization.k8s.io
  cannot "$user" impersonate serviceaccounts -n "$ns_apps"
  cannot "$user" impersonate users
  cannot "$user" create mutatingwebhookconfigurations.admissionregistration.k8s.io
  cannot "$user" approve certificatesigningrequests.certificates.k8s.io
done

# A kubeconfig with the ServiceAccount's own token (TokenRequest API).
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
token=$(kubectl -n "$ns_sys" create token "$fullname" --duration 2h)
sa_kubeconfig="$work/operator.kubeconfig"
kubectl config --kubeconfig "$sa_kubeconfig" set-cluster local --server "$server" --certificate-authority "$ca" --embed-certs >/dev/null
kubectl config --kubeconfig "$sa_kubeconfig" set-credentials operator --token "$token" >/dev/null
kubectl config --kubeconfig "$sa_kubeconfig" set-context local --cluster local --user operator >/dev/null
kubectl config --kubeconfig "$sa_kubeconfig" use-context local >/dev/null
as_operator() { kubectl --kubeconfig "$sa_kubeconfig" "$@"; }
check "the token authenticates as $sa_user" \
  bash -c "kubectl --kubeconfig '$sa_kubeconfig' auth whoami -o jsonpath='{.status.userInfo.username}' | grep -qx '$sa_user'"
if as_operator -n "$ns_other" get secret tmdb >"$work/forbidden.log" 2>&1; then
  fail "with the token, reading a Secret in an unwatched namespace was allowed"
elif grep -q Forbidden "$work/forbidden.log"; then
  pass "with the token, reading a Secret in an unwatched namespace is Forbidden"
else
  fail "reading a Secret in an unwatched namespace failed for another reason: $(cat "$work/forbidden.log")"
fi

# The Applier's requests for every child kind, with the token: server-side
# apply that creates (PATCH needing create), apply that changes, get, list, delete.
child_manifest() { # KIND STEP (YAML flow style; the leading --- keeps kubectl from reading it as JSON)
  echo "---"
  case $1 in
    ServiceAccount) echo "{apiVersion: v1, kind: ServiceAccount, metadata: {name: probe, labels: {app.kubernetes.io/managed-by: movieapp-operator, step: \"$2\"}}}" ;;
    ConfigMap) echo "{apiVersion: v1, kind: ConfigMap, metadata: {name: probe, labels: {app.kubernetes.io/managed-by: movieapp-operator}}, data: {step: \"$2\"}}" ;;
    Service) echo "{apiVersion: v1, kind: Service, metadata: {name: probe, labels: {app.kubernetes.io/managed-by: movieapp-operator}}, spec: {selector: {app: probe}, ports: [{name: http, port: $((8080 + $2))}]}}" ;;
    Deployment) echo "{apiVersion: apps/v1, kind: Deployment, metadata: {name: probe, labels: {app.kubernetes.io/managed-by: movieapp-operator}}, spec: {replicas: 0, revisionHistoryLimit: $2, selector: {matchLabels: {app: probe}}, template: {metadata: {labels: {app: probe}}, spec: {containers: [{name: c, image: probe}]}}}}" ;;
    HorizontalPodAutoscaler) echo "{apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, metadata: {name: probe, labels: {app.kubernetes.io/managed-by: movieapp-operator}}, spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: probe}, minReplicas: 1, maxReplicas: $((2 + $2))}}" ;;
    PodDisruptionBudget) echo "{apiVersion: policy/v1, kind: PodDisruptionBudget, metadata: {name: probe, labels: {app.kubernetes.io/managed-by: movieapp-operator}}, spec: {maxUnavailable: $2, selector: {matchLabels: {app: probe}}}}" ;;
    NetworkPolicy) echo "{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: probe, labels: {app.kubernetes.io/managed-by: movieapp-operator}}, spec: {podSelector: {matchLabels: {app: probe}}, policyTypes: [Ingress], ingress: [{ports: [{port: $((8080 + $2))}]}]}}" ;;
  esac
}
for kind in ServiceAccount ConfigMap Service Deployment HorizontalPodAutoscaler PodDisruptionBudget NetworkPolicy; do
  if child_manifest "$kind" 1 | as_operator -n "$ns_apps" apply --server-side --field-manager movieapp-operator -f - >/dev/null 2>"$work/applier.log" \
    && child_manifest "$kind" 2 | as_operator -n "$ns_apps" apply --server-side --field-manager movieapp-operator -f - >/dev/null 2>>"$work/applier.log" \
    && as_operator -n "$ns_apps" get "$kind" probe >/dev/null 2>>"$work/applier.log" \
    && as_operator -n "$ns_apps" get "$kind" -l app.kubernetes.io/managed-by=movieapp-operator >/dev/null 2>>"$work/applier.log" \
    && as_operator -n "$ns_apps" delete "$kind" probe --wait=false >/dev/null 2>>"$work/applier.log"; then
    pass "with the token: $kind created and changed by server-side apply, read, listed, deleted"
  else
    fail "with the token: the Applier's requests for $kind: $(tail -n 1 "$work/applier.log")"
  fi
done

# ------------------------------------------------------------ 4. the operator, as the ServiceAccount
"$LOCALENV_VENV/bin/python" tests/localenv/push-image.py --repository "$repository" --tag 1.0.0 >"$work/digest" \
  || { fail "pushing the test image to moto's ECR"; finish; exit 1; }
audit_log="$LOCALENV_DIR/audit.log"
audit_offset=$(stat -c %s "$audit_log")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics="http://127.0.0.1:$port"
# Run by the local environment's supervisor: recorded beside the
# components (make env-status shows it, make env-down stops it).
if KUBECONFIG="$sa_kubeconfig" POD_NAME="e2e-$id" POD_NAMESPACE="$ns_sys" \
  bash tests/localenv/localenv.sh start "$operator" --probe "$metrics/readyz" --timeout 30 -- \
  "$MOVIEAPP_OPERATOR_BIN" run --namespaces "$ns_apps" --leader-elect \
  --metrics-addr "127.0.0.1:$port" --resync-interval 15s --default-region us-east-1 \
  --aws-endpoint-url "$AWS_ENDPOINT_URL" --log-format json >"$work/start.log" 2>&1; then
  pass "the operator (as $fullname) serves /readyz"
else
  fail "the operator (as $fullname) serves /readyz: $(cat "$work/start.log")"
fi
eventually 30 "it takes the leader Lease in $ns_sys (movieapp_leader 1)" \
  bash -c "curl -sf '$metrics/metrics' | grep -qx 'movieapp_leader 1'"
check "the Lease names this process as holder" \
  bash -c "kubectl -n '$ns_sys' get lease movieapp-operator-leader -o jsonpath='{.spec.holderIdentity}' | grep -q '^e2e-$id-'"

app() { kubectl -n "$ns_apps" get movieapp shop -o json; }
jq_app() { app | jq -e "$1" >/dev/null; }
health() { app >"$work/app.json" && LUA=$LUA "$DELIVERY_PYTHON" "$here/lua_health_test.py" eval "$work/app.json" | cut -f1; }
health_is() { [ "$(health)" = "$1" ]; }
events_with() { # REASON [TYPE]
  kubectl -n "$ns_apps" get events.events.k8s.io -o json | jq -e --arg r "$1" --arg t "${2:-}" \
    '[.items[] | select(.regarding.kind == "MovieApp" and .regarding.name == "shop"
       and .reportingController == "movieapp-operator" and .reason == $r
       and ($t == "" or .type == $t))] | length > 0' >/dev/null
}

cat <<EOF | kubectl apply -f - >/dev/null
apiVersion: movieapp.io/v1alpha1
kind: MovieApp
metadata: { name: shop, namespace: $ns_apps }
spec:
  region: us-east-1
  worker:
    image: { repository: $repository, tag: "1.0.0" }
    replicas: 1
    tmdb: { apiKeySecretRef: { name: tmdb, key: api-key } }
  exports: { configMapName: shop-connection }
EOF
echo "# create"
eventually 30 "finalizer movieapp.io/cleanup added (patch movieapps)" \
  jq_app '.metadata.finalizers | index("movieapp.io/cleanup")'
eventually 30 "status written for generation 1: observedGeneration and every condition (patch movieapps/status)" \
  jq_app '.status.observedGeneration == 1 and ([.status.conditions[].type] | contains(["Ready","Reconciling","Stalled","ImageResolved","DatabaseReady","QueueReady","NotificationsReady","WorkerAvailable"])) and all(.status.conditions[]; .observedGeneration == 1)'
eventually 30 "the image resolved through ECR to a digest" \
  jq_app ".status.conditions[] | select(.type == \"ImageResolved\") | .status == \"True\" and (.message | endswith(\"@$(cat "$work/digest")\"))"
check "the generated token-signing Secret shop-auth exists, owned by the MovieApp (create secrets)" \
  bash -c "kubectl -n '$ns_apps' get secret shop-auth -o json | jq -e '.metadata.ownerReferences[0].kind == \"MovieApp\"'"
eventually 30 "Events published by movieapp-operator (events.k8s.io)" events_with Resolved Normal

eventually 120 "children applied with owner references (server-side apply as the ServiceAccount)" \
  bash -c "set -o pipefail; for k in deployment service configmap/shop-config configmap/shop-connection serviceaccount networkpolicy; do case \$k in */*) o=\$k;; *) o=\$k/shop;; esac; kubectl -n '$ns_apps' get \$o -o json | jq -e '.metadata.ownerReferences[0].kind == \"MovieApp\" and .metadata.labels[\"app.kubernetes.io/managed-by\"] == \"movieapp-operator\"' >/dev/null || exit 1; done"
eventually 120 "the MovieApp becomes Ready: tables, queues and topic in moto, worker Pods Ready on kwok" \
  jq_app '.status.conditions[] | select(.type == "Ready") | .status == "True"'
check "status names what was made: 3 tables, both queues, the topic, the digest" \
  jq_app "(.status.tables | length) == 3 and (.status.queue.deadLetterArn | startswith(\"arn:\")) and (.status.notifications.topicArn | startswith(\"arn:\")) and (.status.image | endswith(\"@$(cat "$work/digest")\"))"
check "Argo CD health once Ready: Healthy" health_is Healthy

echo "# update"
kubectl -n "$ns_apps" patch movieapp shop --type merge \
  -p '{"spec":{"worker":{"tmdb":{"apiKeySecretRef":{"key":"missing"}}}}}' >/dev/null
eventually 30 "a reference to a missing Secret key: Stalled=True, reason SecretKeyNotFound, for generation 2" \
  jq_app '.status.observedGeneration == 2 and (.status.conditions[] | select(.type == "Stalled") | .status == "True" and .reason == "SecretKeyNotFound")'
eventually 30 "a Warning Event says so" events_with SecretKeyNotFound Warning
check "Argo CD health while stalled: Degraded" health_is Degraded
eventually 30 "movieapp_resources counts the Stalled MovieApp" \
  bash -c "curl -sf '$metrics/metrics' | grep -qx 'movieapp_resources{condition=\"Stalled\",status=\"True\"} 1'"
kubectl -n "$ns_apps" patch movieapp shop --type merge \
  -p '{"spec":{"worker":{"tmdb":{"apiKeySecretRef":{"key":"api-key"}}}}}' >/dev/null
eventually 30 "the repaired spec clears Stalled (generation 3)" \
  jq_app '.status.observedGeneration == 3 and (.status.conditions[] | select(.type == "Stalled") | .status == "False")'
check "Argo CD health after the repair: not Degraded" bash -c "! [ \"\$(LUA=$LUA '$DELIVERY_PYTHON' '$here/lua_health_test.py' eval <(kubectl -n '$ns_apps' get movieapp shop -o json) | cut -f1)\" = Degraded ]"

curl -sf "$metrics/metrics" >"$work/metrics.txt" || true
missing_metrics=""
# The operator's table only: the api-workers' metrics (the section "The
# api-workers" on) are served by the workers, not by this process.
for metric in $(sed '/^## The api-workers/q' docs/metrics.md 2>/dev/null | grep -o '^| `movieapp_[a-z_]*' | tr -d '|` '); do
  base=${metric%_total}; base=${base%_info}
  # A labelled series appears with its first observation: no failed
  # reconcile here, so no movieapp_reconcile_errors_total yet.
  if [ "$metric" = movieapp_reconcile_errors_total ] && ! grep -q 'result="error"' "$work/metrics.txt"; then continue; fi
  grep -q "^# TYPE $base " "$work/metrics.txt" || missing_metrics+=" $metric"
done
if [ -f docs/metrics.md ] && [ -z "$missing_metrics" ]; then
  pass "every metric in docs/metrics.md is served on /metrics"
else
  fail "metrics documented but not served:${missing_metrics:- (docs/metrics.md missing)}"
fi
check "reconciles counted (movieapp_reconcile_total{result=\"success\"})" \
  grep -q '^movieapp_reconcile_total{result="success"} [1-9]' "$work/metrics.txt"
check "ECR requests counted with bounded labels (movieapp_aws_requests_total{service=\"ecr\",...})" \
  grep -q '^movieapp_aws_requests_total{service="ecr",operation="[A-Za-z]*",outcome="success"} [1-9]' "$work/metrics.txt"

echo "# delete"
kubectl -n "$ns_apps" delete movieapp shop --wait=false >/dev/null
eventually 60 "deletion completes: the finalizer is removed and the MovieApp is gone" \
  bash -c "! kubectl -n '$ns_apps' get movieapp shop >/dev/null 2>&1"
check "a Deleted Event records the AWS clean-up" events_with Deleted Normal
eventually 60 "the generated Secret goes with its owner (garbage collection through the owner reference)" \
  bash -c "! kubectl -n '$ns_apps' get secret shop-auth >/dev/null 2>&1"
eventually 60 "the children go with their owner (garbage collection)" \
  bash -c "[ -z \"\$(kubectl -n '$ns_apps' get deployment,service,configmap,serviceaccount,networkpolicy -l app.kubernetes.io/instance=shop -o name)\" ]"

echo "# shutdown"
if ended=$(bash tests/localenv/localenv.sh stop "$operator" --grace 15 2>&1); then
  pass "SIGTERM: the operator stops within 15 s ($ended)"
else
  fail "SIGTERM: the operator did not stop within 15 s ($ended)"
fi
check "SIGTERM: its last log line is its orderly stop" \
  bash -c "tail -n 1 '$operator_log' | jq -e '.fields.message == \"stopped\"'"
check "the leader Lease is released on shutdown (a standby takes over at once)" \
  bash -c "[ -z \"\$(kubectl -n '$ns_sys' get lease movieapp-operator-leader -o jsonpath='{.spec.holderIdentity}')\" ]"

# ------------------------------------------------------------ 5. the audit log
audit() { tail -c +"$((audit_offset + 1))" "$audit_log" | AUDIT_USER="$sa_user" python3 "$here/audit_summary.py" "$@"; }
eventually 30 "the API server's audit log has the operator's last request (the Lease release)" \
  audit --expect "update coordination.k8s.io/leases"
if audit --report >"$work/audit.txt"; then
  pass "no request of the operator was denied: $(head -n 1 "$work/audit.txt")"
else
  fail "requests of the operator were denied:"; cat "$work/audit.txt"
fi
sed -n '2,$p' "$work/audit.txt" | sed 's/^/#   /'
for request in "list movieapp.io/movieapps" "watch movieapp.io/movieapps" "patch movieapp.io/movieapps" \
  "patch movieapp.io/movieapps/status" "get core/secrets" "create core/secrets" "watch core/secrets" \
  "create events.k8s.io/events" "get coordination.k8s.io/leases" "update coordination.k8s.io/leases"; do
  check "the operator used the grant: $request" audit --expect "$request"
done
for kind in apps/deployments core/services core/configmaps core/serviceaccounts networking.k8s.io/networkpolicies; do
  check "the operator used the grant: patch $kind (server-side apply, creating)" audit --expect "patch $kind"
done

finish
