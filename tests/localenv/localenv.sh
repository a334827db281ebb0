#!/usr/bin/env bash
# The local environment of DESIGN §6: a real Kubernetes control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok with one fake
# node), moto as the AWS endpoint, and the TMDB stub. Everything listens on
# 127.0.0.1 and lives under .localenv/ of the checkout.
#
#   localenv.sh up       start (idempotent; recovers from a stale .localenv)
#   localenv.sh down     stop exactly the processes recorded by `up`
#   localenv.sh status   print what runs
#   localenv.sh restart NAME
#                        stop one component and start it again (moto comes
#                        back empty: its state lives in memory)
#
# Ports default to a block starting at LOCALENV_PORT_BASE (42300); set it to
# move the whole block.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state="$root/.localenv"
pids="$state/pids"
logs="$state/logs"
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}

set_ports() {
  base=$1
  ETCD_PORT=$((base + 0))
  ETCD_PEER_PORT=$((base + 1))
  APISERVER_PORT=$((base + 2))
  KCM_PORT=$((base + 3))
  SCHEDULER_PORT=$((base + 4))
  KWOK_PORT=$((base + 5))
  MOTO_PORT=$((base + 6))
  TMDB_PORT=$((base + 7))
}
set_ports "${LOCALENV_PORT_BASE:-42300}"
TMDB_KEY=${LOCALENV_TMDB_API_KEY:-local-tmdb-key}
REGION=us-east-1

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'localenv: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Starts a named process in its own session, logging to .localenv/logs, and
# records its PID before anything else can fail.
start() {
  local name=$1; shift
  mkdir -p "$pids" "$logs"
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pids/$name"
}

# Stops one recorded process and its process group (each was started as a
# session leader by `start`, so the group is exactly what we started).
stop_one() {
  local f=$1 pid
  pid=$(cat "$f")
  if pid_alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

stop_all() {
  [ -d "$pids" ] || return 0
  local f name
  # Processes other tools recorded here (make demo's operator and worker)
  # first, then ours in reverse start order: clients before their servers.
  for f in "$pids"/*; do
    name=$(basename "$f")
    case "$name" in
      kwok|kube-scheduler|kube-controller-manager|kube-apiserver|etcd|tmdb-stub|moto) ;;
      *) [ -f "$f" ] && stop_one "$f" ;;
    esac
  done
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd tmdb-stub moto; do
    [ -f "$pids/$name" ] && stop_one "$pids/$name"
  done
  return 0
}

all_running() {
  local name
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok moto tmdb-stub; do
    [ -f "$pids/$name" ] && pid_alive "$(cat "$pids/$name")" || return 1
  done
}

port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

check_ports() {
  local name port
  for spec in etcd:$ETCD_PORT etcd-peer:$ETCD_PEER_PORT kube-apiserver:$APISERVER_PORT \
    kube-controller-manager:$KCM_PORT kube-scheduler:$SCHEDULER_PORT kwok:$KWOK_PORT \
    moto:$MOTO_PORT tmdb-stub:$TMDB_PORT; do
    name=${spec%%:*}; port=${spec##*:}
    port_free "$port" || die "port $port (for $name) on 127.0.0.1 is already in use. Stop what uses it (\`ss -ltnp 'sport = :$port'\`) or choose another block with LOCALENV_PORT_BASE=<port>."
  done
}

# Waits until a command succeeds, or fails naming the component and its log.
wait_for() {
  local name=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$(cat "$pids/$name" 2>/dev/null)"; then
      tail -n 20 "$logs/$name.log" >&2 || true
      die "$name exited during start-up; its log is $logs/$name.log"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$logs/$name.log" >&2 || true
      die "$name did not become ready within ${timeout}s; its log is $logs/$name.log"
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- set-up

python_venv() {
  local py_version key venv
  py_version=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  key=$({ cat "$here/requirements.txt"; echo "$py_version"; } | sha256sum | cut -c1-16)
  venv="$cache_root/venv-$key"
  # The marker is written last, so an interrupted install is redone whole.
  if [ ! -f "$venv/.complete" ]; then
    log "installing moto into $venv (first time only)"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2 \
      || { rm -rf "$venv"; die "pip could not install moto from PyPI (see the output above)"; }
    touch "$venv/.complete"
  fi
  echo "$venv"
}

# Certificates and keys for one cluster: a CA, the apiserver's serving
# certificate, a client certificate per component, and the service-account
# signing key pair.
make_pki() {
  local pki="$state/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    gen_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }
    gen_key ca
    openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=movieapp-localenv-ca" -out ca.crt 2>/dev/null

    cat >apiserver.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    gen_key apiserver
    openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null

    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    client() {
      gen_key "$1"
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile client.ext -out "$1.crt" 2>/dev/null
    }
    client admin "/O=system:masters/CN=movieapp-admin"
    client controller-manager "/CN=system:kube-controller-manager"
    client scheduler "/CN=system:kube-scheduler"
    client kwok "/O=system:masters/CN=kwok"

    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
  )
}

kubeconfig() {
  local user=$1 out=$2
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $state/pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $state/pki/$user.crt
    client-key: $state/pki/$user.key
contexts:
- name: local
  context: { cluster: local, user: $user }
current-context: local
EOF
}

apiserver_ready() {
  curl -sf --max-time 2 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -qx ok
}

node_ready() {
  kubectl --kubeconfig "$state/kubeconfig" get node kwok-node-0 \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

write_env() {
  cat >"$state/env.sh.tmp" <<EOF
# Written by \`make env-up\`: source it to use the local environment.
export KUBECONFIG=$state/kubeconfig
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export AWS_REGION=$REGION
export AWS_DEFAULT_REGION=$REGION
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export TMDB_BASE_URL=http://127.0.0.1:$TMDB_PORT
export TMDB_API_KEY=$TMDB_KEY
export LOCALENV_DIR=$state
export LOCALENV_PORT_BASE=$base
export LOCALENV_BIN=$bin
export LOCALENV_VENV=$venv
EOF
  mv "$state/env.sh.tmp" "$state/env.sh"
}

# ---------------------------------------------------------------- components

# Starts one component with its settings; `bin` and `venv` are set by the caller.
start_component() {
  case "$1" in
    moto) start moto "$venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" ;;
    tmdb-stub)
      start tmdb-stub python3 "$root/tests/tmdb-stub/tmdb_stub.py" --host 127.0.0.1 --port "$TMDB_PORT" --api-key "$TMDB_KEY" ;;
    etcd)
      # fsync off: this etcd holds throw-away test state, and fsync dominates its latency.
      start etcd "$bin/etcd" --name local --data-dir "$state/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn ;;
    kube-apiserver)
      # Service IPs: a /16, as each MovieApp has a Service (a /24 ran out at
      # about 250 and make bench applies 500).
      start kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
        --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
        --client-ca-file "$state/pki/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$state/pki/sa.pub" --service-account-signing-key-file "$state/pki/sa.key" \
        --authorization-mode Node,RBAC --service-cluster-ip-range 10.0.0.0/16 \
        --endpoint-reconciler-type none --allow-privileged=true --profiling=false \
        --audit-policy-file "$state/audit-policy.yaml" --audit-log-path "$state/audit.log" \
        --audit-log-format json --audit-log-mode batch ;;
    kube-controller-manager)
      # 200 requests/s instead of client-go's default of 20, at which making
      # the ReplicaSets and Pods of 500 Deployments held them all from Ready
      # for 120 s (docs/benchmarks.md).
      start kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig "$state/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
        --service-account-private-key-file "$state/pki/sa.key" --root-ca-file "$state/pki/ca.crt" \
        --use-service-account-credentials=true --cluster-name movieapp-local \
        --kube-api-qps 200 --kube-api-burst 400 \
        --controllers '*,-nodeipam,-cloud-node-lifecycle,-route,-service,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ephemeral-volume,-pvc-protection,-pv-protection,-csrsigning,-csrapproving,-csrcleaner,-bootstrapsigner,-tokencleaner' ;;
    kube-scheduler)
      start kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig "$state/scheduler.kubeconfig" \
        --authentication-kubeconfig "$state/scheduler.kubeconfig" \
        --authorization-kubeconfig "$state/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false ;;
    kwok)
      start kwok "$bin/kwok" --kubeconfig "$state/kwok.kubeconfig" --config "$bin/kwok-stages.yaml" \
        --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --manage-nodes-with-label-selector= --manage-single-node= \
        --node-lease-duration-seconds 40 \
        --node-ip 127.0.0.1 --cidr 10.244.0.0/16 \
        --server-address "127.0.0.1:$KWOK_PORT" ;;
    *) die "unknown component '$1'" ;;
  esac
}

# Waits until one component serves.
wait_ready() {
  case "$1" in
    moto) wait_for moto 60 curl -sf --max-time 2 "http://127.0.0.1:$MOTO_PORT/moto-api/" ;;
    tmdb-stub) wait_for tmdb-stub 20 curl -sf --max-time 2 "http://127.0.0.1:$TMDB_PORT/healthz" ;;
    etcd) wait_for etcd 30 curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" ;;
    kube-apiserver) wait_for kube-apiserver 60 apiserver_ready ;;
    kwok) wait_for kwok 60 node_ready ;;
    *) sleep 1 ;;
  esac
}

COMPONENTS="etcd kube-apiserver kube-controller-manager kube-scheduler kwok moto tmdb-stub"

# Stops one running component and starts it again with the same settings.
# moto keeps its state in memory, so a restarted moto starts empty: that is
# how the reliability tests lose AWS state.
restart() {
  local name=${1:-}
  [ -n "$name" ] && [[ " $COMPONENTS " == *" $name "* ]] \
    || die "usage: localenv.sh restart <component>, one of: $COMPONENTS"
  [ -f "$state/env.sh" ] || die "the local environment is not running: run \`make env-up\` first"
  bin=$(sed -n 's/^export LOCALENV_BIN=//p' "$state/env.sh")
  venv=$(sed -n 's/^export LOCALENV_VENV=//p' "$state/env.sh")
  # The ports the running environment was started with.
  set_ports "$(sed -n 's/^export LOCALENV_PORT_BASE=//p' "$state/env.sh")"
  log "restarting $name"
  [ -f "$pids/$name" ] && stop_one "$pids/$name"
  [ "$name" = kube-apiserver ] && for _ in $(seq 1 50); do port_free "$APISERVER_PORT" && break; sleep 0.1; done
  start_component "$name"
  wait_ready "$name"
  log "$name is running again"
}

up() {
  if all_running && apiserver_ready; then
    log "the local environment is already running; source .localenv/env.sh to use it"
    return 0
  fi
  if [ -d "$state" ]; then
    log "cleaning up a stale .localenv from an earlier run"
    stop_all
    rm -rf "$state"
  fi
  check_ports

  # Checkouts that start at once (CI beside a developer's run) share the
  # cache: one builds and installs, the others wait for it and reuse it.
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.setup.lock"
  flock 9
  bin=$("$here/build.sh" | tail -n 1)
  venv=$(python_venv)
  exec 9>&-
  mkdir -p "$state" "$logs" "$pids"
  make_pki
  kubeconfig admin "$state/kubeconfig"
  kubeconfig controller-manager "$state/controller-manager.kubeconfig"
  kubeconfig scheduler "$state/scheduler.kubeconfig"
  kubeconfig kwok "$state/kwok.kubeconfig"
  cp "$here/audit-policy.yaml" "$state/audit-policy.yaml"

  log "starting moto and the TMDB stub"
  start_component moto
  start_component tmdb-stub

  log "starting etcd"
  start_component etcd
  wait_ready etcd

  log "starting kube-apiserver"
  start_component kube-apiserver
  wait_ready kube-apiserver

  log "starting kube-controller-manager, kube-scheduler and kwok"
  start_component kube-controller-manager
  start_component kube-scheduler
  start_component kwok

  kubectl --kubeconfig "$state/kubeconfig" apply -f "$here/node.yaml" >/dev/null
  wait_ready kwok

  log "waiting for moto and the TMDB stub"
  wait_ready moto
  wait_ready tmdb-stub

  write_env
  log "the local environment is up: source .localenv/env.sh, then use kubectl"
}

down() {
  if [ ! -d "$state" ]; then
    log "no local environment to stop"
    return 0
  fi
  stop_all
  rm -rf "$state"
  log "the local environment is stopped"
}

status() {
  local name pid
  [ -d "$pids" ] || { echo "not running"; return 0; }
  for f in "$pids"/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f"); pid=$(cat "$f")
    if pid_alive "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: not running"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart) restart "${2:-}" ;;
  *) die "usage: localenv.sh up|down|status|restart <component>" ;;
esac
