#!/usr/bin/env bash
# `make demo`: the main job on a fresh machine. Starts the local environment,
# runs the operator built from this checkout, creates the MovieApp of
# examples/movieapp.yaml, waits until it is Ready, shows what was made, and
# starts an api-worker wired to exactly what the operator provisioned.
# Everything keeps running; `make env-down` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

NAMESPACE=movies
MOVIEAPP=netflix-clone
IMAGE_REPOSITORY=api-worker
IMAGE_TAG=1.0.0
DEMO_PORT=${DEMO_PORT:-8088}
OPERATOR_METRICS_PORT=${OPERATOR_METRICS_PORT:-18080}

bold=$'\e[1m'; dim=$'\e[2m'; green=$'\e[32m'; red=$'\e[31m'; reset=$'\e[0m'
[ -t 1 ] || { bold=; dim=; green=; red=; reset=; }
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
fail() {
  printf '\n%smake demo failed: %s%s\n' "$red" "$1" "$reset" >&2
  [ -n "${2:-}" ] && printf '%s\n' "$2" >&2
  exit 1
}
trap 'printf "\n%sinterrupted.%s Everything started so far is recorded: make env-down stops it, make demo starts again.\n" "$red" "$reset" >&2; exit 130' INT TERM

started=$(date +%s)

# ------------------------------------------------------------ prerequisites
step "checking prerequisites"
for tool in cargo go python3 kubectl curl openssl; do
  command -v "$tool" >/dev/null || fail "'$tool' is not installed" \
    "Install it (Rust from rustup.rs, Go from go.dev, the rest from your package manager), then run make demo again."
done

# ------------------------------------------------------------ environment
step "starting the local environment (Kubernetes control plane, moto, TMDB stub)"
bash tests/localenv/localenv.sh up || fail "the local environment did not start" \
  "See the message above and the logs in .localenv/logs/. 'make env-down && make demo' starts from scratch."
# shellcheck source=/dev/null
. .localenv/env.sh
pids="$LOCALENV_DIR/pids"
logs="$LOCALENV_DIR/logs"

step "building movieapp-operator and api-worker from this checkout"
cargo build --locked -p movieapp-operator -p api-worker 2>&1 | grep -E '^\s*(Compiling|Finished|error|warning: unused)' || true
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
[ -x "$bin/movieapp-operator" ] && [ -x "$bin/api-worker" ] || fail "the build failed" \
  "Run 'cargo build -p movieapp-operator -p api-worker' to see the errors."

# Stops a process an earlier demo recorded, so this run starts fresh ones.
stop_recorded() {
  local file="$pids/$1" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# An earlier demo's processes are replaced by fresh ones.
for name in demo-operator demo-api-worker demo-jobs-worker; do stop_recorded "$name"; done
for port in "$DEMO_PORT" "$OPERATOR_METRICS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port on 127.0.0.1 is already in use" \
      "Stop what listens there (ss -ltnp 'sport = :$port'), or choose others: DEMO_PORT=... OPERATOR_METRICS_PORT=... make demo"
  fi
done

# ------------------------------------------------------------ operator
step "installing the MovieApp CRD and starting the operator"
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/movieapps.movieapp.io --timeout=30s >/dev/null
stop_recorded demo-operator
setsid "$bin/movieapp-operator" run \
  --metrics-addr "127.0.0.1:$OPERATOR_METRICS_PORT" \
  --aws-endpoint-url "$AWS_ENDPOINT_URL" \
  --default-region "$AWS_REGION" \
  --worker-tmdb-base-url "$TMDB_BASE_URL" \
  --resync-interval 30s --namespaces "$NAMESPACE" \
  >"$logs/operator.log" 2>&1 </dev/null &
echo $! >"$pids/demo-operator"
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$OPERATOR_METRICS_PORT/readyz" >/dev/null && break
  kill -0 "$(cat "$pids/demo-operator")" 2>/dev/null || fail "the operator exited" "$(tail -n 20 "$logs/operator.log")"
  sleep 0.1
done
echo "   operator running (pid $(cat "$pids/demo-operator")), log: .localenv/logs/operator.log"

# ------------------------------------------------------------ inputs
step "pushing an api-worker image record to ECR (moto) and creating the TMDB Secret"
digest=$("$LOCALENV_VENV/bin/python" tests/localenv/push-image.py --repository "$IMAGE_REPOSITORY" --tag "$IMAGE_TAG") \
  || fail "could not record the image in moto's ECR" "Is moto up? curl $AWS_ENDPOINT_URL/moto-api/"
echo "   $IMAGE_REPOSITORY:$IMAGE_TAG -> $digest"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NAMESPACE" create secret generic tmdb --from-literal=api-key="$TMDB_API_KEY" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

# ------------------------------------------------------------ the MovieApp
step "kubectl apply -f examples/movieapp.yaml"
kubectl apply -f examples/movieapp.yaml
printf '%s   waiting for Ready; conditions as they change:%s\n' "$dim" "$reset"
last=""
deadline=$((SECONDS + 180))
while :; do
  conditions=$(kubectl -n "$NAMESPACE" get movieapp "$MOVIEAPP" \
    -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}' 2>/dev/null || true)
  if [ "$conditions" != "$last" ] && [ -n "$conditions" ]; then
    printf '   %s  %s\n' "$(date +%T)" "$conditions"
    last=$conditions
  fi
  case " $conditions" in *" Ready=True "*) break ;; esac
  if [ $SECONDS -ge $deadline ]; then
    kubectl -n "$NAMESPACE" get movieapp "$MOVIEAPP" -o yaml | sed -n '/^status:/,$p' >&2
    fail "the MovieApp did not become Ready within 180 s" \
      "The conditions above say why; the operator's log is .localenv/logs/operator.log."
  fi
  sleep 1
done

# ------------------------------------------------------------ summary
step "what was made"
kubectl -n "$NAMESPACE" get movieapp "$MOVIEAPP"
echo
echo "${bold}AWS resources (read back from moto):${reset}"
"$LOCALENV_VENV/bin/python" - "$NAMESPACE" "$MOVIEAPP" <<'PY'
import json, subprocess, sys
import boto3

namespace, name = sys.argv[1], sys.argv[2]
status = json.loads(subprocess.check_output(
    ["kubectl", "-n", namespace, "get", "movieapp", name, "-o", "jsonpath={.status}"]))
dynamodb, sqs, sns = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("sns")
for table in status.get("tables", []):
    described = dynamodb.describe_table(TableName=table["name"])["Table"]
    print(f"   DynamoDB table  {table['name']}  ({described['TableStatus']}, {described.get('ItemCount', 0)} items)")
queue = status.get("queue", {})
for label, url in (("SQS queue      ", queue.get("url")), ("SQS dead-letter", queue.get("deadLetterUrl"))):
    if url:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        print(f"   {label}  {url}  ({attrs['QueueArn']})")
topic = status.get("notifications", {}).get("topicArn")
if topic:
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    print(f"   SNS topic        {topic}  ({len(subs)} subscription(s))")
PY
echo
echo "${bold}The Deployment runs the image by digest:${reset}"
kubectl -n "$NAMESPACE" get deployment "$MOVIEAPP" -o jsonpath='   {.spec.template.spec.containers[0].image}{"\n"}'

# ------------------------------------------------------------ api-worker
step "starting an api-worker wired to what the operator provisioned"
# The cluster's Pods are simulated by kwok; this is the same binary and the
# same settings (the generated ConfigMap and Secrets), run beside them.
worker_env="$LOCALENV_DIR/demo-worker.env"
{
  kubectl -n "$NAMESPACE" get configmap "$MOVIEAPP-config" -o go-template='{{range $k, $v := .data}}{{$k}}={{$v}}{{"\n"}}{{end}}' |
    while IFS='=' read -r key value; do printf '%s=%q\n' "$key" "$value"; done
  printf 'TMDB_API_KEY=%q\n' "$(kubectl -n "$NAMESPACE" get secret tmdb -o jsonpath='{.data.api-key}' | base64 -d)"
  printf 'MOVIEAPP_TOKEN_SIGNING_KEY=%q\n' "$(kubectl -n "$NAMESPACE" get secret "$MOVIEAPP-auth" -o jsonpath='{.data.token-signing-key}' | base64 -d)"
} >"$worker_env"
chmod 600 "$worker_env"
stop_recorded demo-api-worker
stop_recorded demo-jobs-worker
(
  set -a
  # shellcheck source=/dev/null
  . "$worker_env"
  set +a
  export PORT=$DEMO_PORT LISTEN_ADDR=127.0.0.1 LOG_FORMAT=text
  setsid "$bin/api-worker" serve >"$logs/api-worker.log" 2>&1 </dev/null &
  echo $! >"$pids/demo-api-worker"
  setsid "$bin/api-worker" worker >"$logs/jobs-worker.log" 2>&1 </dev/null &
  echo $! >"$pids/demo-jobs-worker"
)
url="http://127.0.0.1:$DEMO_PORT"
for _ in $(seq 1 150); do
  curl -sf "$url/readyz" >/dev/null && break
  kill -0 "$(cat "$pids/demo-api-worker")" 2>/dev/null || fail "the api-worker exited" "$(tail -n 20 "$logs/api-worker.log")"
  sleep 0.2
done
curl -sf "$url/readyz" >/dev/null || fail "the api-worker is not ready" "$(tail -n 20 "$logs/api-worker.log")"

# The commands printed below are run once here, so they are known to work.
examples=(
  "curl -s '$url/api/v1/movies/popular?page=1'"
  "curl -s '$url/api/v1/movies/search?query=matrix'"
  "curl -s '$url/api/v1/movies/603'"
)
for example in "${examples[@]}"; do
  eval "$example" | python3 -c 'import json,sys; json.load(sys.stdin)' \
    || fail "the example '$example' did not return JSON" "$(tail -n 20 "$logs/api-worker.log")"
done

cat >"$LOCALENV_DIR/demo.env" <<EOF
DEMO_API_URL=$url
DEMO_NAMESPACE=$NAMESPACE
DEMO_MOVIEAPP=$MOVIEAPP
EOF

elapsed=$(( $(date +%s) - started ))
cat <<EOF

${green}${bold}The demo is running${reset} (set up in ${elapsed}s).

  web page      $url/
  API           $url/api/v1   (OpenAPI: $url/openapi.json)
  operator      http://127.0.0.1:$OPERATOR_METRICS_PORT/metrics

Try:
  ${examples[0]}
  ${examples[1]}
  ${examples[2]}

And with kubectl (after '. .localenv/env.sh'):
  kubectl get movieapps -A
  kubectl -n $NAMESPACE describe movieapp $MOVIEAPP

Logs are in .localenv/logs/. 'make env-down' stops everything.
EOF
