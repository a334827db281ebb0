#!/usr/bin/env bash
# The real node beside kwok's: containerd and runc from Debian, a
# kubelet built from the control plane's k8s.io/kubernetes module
# (build.sh --kubelet), the cgroupfs driver, the Debian CNI bridge plugins,
# the ECR registry host mapped to the local OCI registry. The node is
# labelled and tainted `movieapp.io/real-node=true` (NoSchedule): only Pods
# that tolerate it go there; kwok's node stays for the benchmarks.
#
# containerd and the kubelet are components of the local environment (the
# supervisor starts them, checks them, shows them in `make env-status` and
# stops them at `make env-down`) when it is started with
# LOCALENV_REAL_NODE=1 (required) or auto (when the machine can; make demo's
# default). The supervisor runs this script around them:
#
#   real-node.sh check     can this machine run it? exit 0, or 3 with the
#                          reason on stdout (not root; no iptables, ip,
#                          containerd, runc or CNI bridge plugin that
#                          apt-get can install; cannot make a bridge;
#                          another checkout's real node runs: one per machine)
#   real-node.sh prepare   check, install what is missing, build the kubelet,
#                          write the configuration, make the bridge and the
#                          DNAT rule; prints dir=, bin=, node_ip=, gateway=
#                          (exit 3: as check)
#   real-node.sh drain     cordon and delete the node's Pods (the kubelet
#                          tears their sandboxes down), before the stop
#   real-node.sh cleanup   after containerd and the kubelet stopped: kill what
#                          the shims still run, release network namespaces
#                          and mounts, remove the bridge and the DNAT rule
#   real-node.sh up        add the node to the running environment (make real-node-up)
#   real-node.sh down      stop it alone, the rest keeps running (make real-node-down)
#   real-node.sh status    "real-node: Ready" or "real-node: down" (exit 1)
#
# One real node per machine: the bridge mvnode0 and its subnet are the
# machine's. Runs as root (containerd, network namespaces, iptables). Ports,
# from the environment's block: kubelet base+10, its healthz base+11,
# containerd's metrics base+12; the OCI registry base+20. State:
# /var/lib/movieapp-real-node/<base>/ (REAL_NODE_DIR).
# Pods reach moto and the TMDB stub (on 127.0.0.1) at the bridge's gateway
# 10.244.50.1 (a DNAT rule on the bridge, route_localnet on it).
# docs/development.md, "A real node", gives the reason for each setting.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state_root=${LOCALENV_DIR:-$root/.localenv}
NODE=movieapp-node-0
SUBNET=10.244.50.0/24
GATEWAY=10.244.50.1
BRIDGE=mvnode0
ECR_HOST=123456789012.dkr.ecr.us-east-1.amazonaws.com
PAUSE=localhost/movieapp/pause:3.10

log() { echo ">> $*" >&2; }
die() { echo "real-node.sh: $*" >&2; exit 1; }
localenv() { bash "$here/localenv.sh" "$@"; }

# The supervisor passes the block's base (REAL_NODE_BASE) before env.sh exists.
base=${REAL_NODE_BASE:-$(sed -n 's/^export LOCALENV_PORT_BASE=//p' "$state_root/env.sh" 2>/dev/null || true)}
base=${base:-${LOCALENV_PORT_BASE:-27300}}
# Outside .localenv/: the kubelet's and containerd's mounts would keep
# `make env-down` from removing it, and `cleanup` needs the configuration
# after containerd stopped, to clean what the shims still run.
dir=${REAL_NODE_DIR:-/var/lib/movieapp-real-node/$base}
kubeconfig=$state_root/kubeconfig
# The kubelet's own identity, system:node:movieapp-node-0 in system:nodes.
node_kubeconfig=$state_root/node.kubeconfig
kubelet_port=$((base + 10)); healthz_port=$((base + 11)); metrics_port=$((base + 12))
registry_port=$((base + 20))
ctr_() { ctr -a "$dir/containerd.sock" -n k8s.io "$@"; }

install_runtime() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]} (first time only)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

configure() {
  local node_ip=$1
  mkdir -p "$dir/net.d" "$dir/certs.d/$ECR_HOST" "$dir/pods" "$dir/logs"
  # restrict_oom_score_adj: processes here lack CAP_SYS_RESOURCE, so runc
  # cannot set the sandbox's oom_score_adj of -998 ("can't get final child's
  # PID from pipe: EOF" otherwise).
  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "$dir/containerd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[metrics]
  address = "127.0.0.1:$metrics_port"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "$PAUSE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
  cat >"$dir/net.d/10-movieapp-bridge.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "movieapp-node",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$dir/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$dir/certs.d/$ECR_HOST/hosts.toml" <<EOF
server = "http://127.0.0.1:$registry_port"

[host."http://127.0.0.1:$registry_port"]
  capabilities = ["pull", "resolve"]
EOF
  # The disk here is often above 85 % used: the default eviction and image
  # GC thresholds would mark the node DiskPressure and delete its images.
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$dir/containerd.sock
imageServiceEndpoint: unix://$dir/containerd.sock
staticPodPath: $dir/pods
podLogsDir: $dir/logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state_root/pki/ca.crt}
authorization:
  mode: Webhook
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
serializeImagePulls: false
registerWithTaints:
- {key: movieapp.io/real-node, value: "true", effect: NoSchedule}
resolvConf: /etc/resolv.conf
EOF
}

# Pods reach the host's loopback services through the bridge's gateway.
nat_rule=(PREROUTING -i "$BRIDGE" -d "$GATEWAY/32" -p tcp -m multiport --dports "$((base + 6)),$((base + 7))"
  -j DNAT --to-destination 127.0.0.1)

node_ready() {
  KUBECONFIG=$kubeconfig kubectl get node "$NODE" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# Why this machine cannot run the node, or nothing. Missing packages are not
# a reason when apt-get can install them (root).
unavailable() {
  [ "$(id -u)" = 0 ] || { echo "not root (containerd, network namespaces and iptables need it)"; return; }
  command -v apt-get >/dev/null || for tool in containerd runc iptables; do
    command -v "$tool" >/dev/null || { echo "no $tool, and no apt-get to install it"; return; }
  done
  command -v ip >/dev/null || { echo "no ip command (iproute2)"; return; }
  [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || { echo "no cgroup memory controller"; return; }
  local other
  for other in /var/lib/movieapp-real-node/*/; do
    other=${other%/}
    [ "$other" != "$dir" ] && [ -S "$other/containerd.sock" ] || continue
    if ctr -a "$other/containerd.sock" version >/dev/null 2>&1; then
      echo "another checkout's real node runs (state $other; one per machine: the bridge $BRIDGE is the machine's)"
      return
    fi
  done
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge 2>/dev/null || { echo "cannot create the bridge $BRIDGE (ip link add: not permitted)"; return; }
  fi
  return 0
}

check() {
  local why
  why=$(unavailable)
  [ -z "$why" ] || { echo "$why"; exit 3; }
}

# Pods reach the host's loopback services through the bridge's gateway.
network() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  iptables -t nat -C "${nat_rule[@]}" 2>/dev/null || iptables -t nat -A "${nat_rule[@]}"
}

prepare() {
  local why; why=$(unavailable); [ -z "$why" ] || { echo "$why"; exit 3; }
  install_runtime
  local bin node_ip
  bin=$(bash "$here/build.sh" --kubelet | tail -1)
  node_ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  [ -n "$node_ip" ] || { echo "no IPv4 address with a route (the kubelet refuses a loopback node IP)"; exit 3; }
  configure "$node_ip"
  # Left by an earlier run that was killed: its Pods' addresses.
  rm -rf "$dir/cni-ipam"
  network
  echo "dir=$dir"
  echo "bin=$bin"
  echo "node_ip=$node_ip"
  echo "gateway=$GATEWAY"
}

# Before the supervisor stops the kubelet: the kubelet tears its Pods down
# (sandboxes, network namespaces, addresses); cordoned, so that no
# replacement Pod lands here meanwhile.
drain() {
  node_ready || return 0
  KUBECONFIG=$kubeconfig kubectl cordon "$NODE" >/dev/null 2>&1 || true
  KUBECONFIG=$kubeconfig kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$NODE" \
    --grace-period=2 --timeout=30s >/dev/null 2>&1 || true
  # Cordoned, it would stay unschedulable when a kubelet registers it again.
  KUBECONFIG=$kubeconfig kubectl delete node "$NODE" --wait=false >/dev/null 2>&1 || true
}

# After containerd and the kubelet stopped (their shims run in sessions of
# their own and outlive them): containerd is started once more, by hand, to
# kill and remove what its shims still run.
cleanup() {
  local own_containerd=""
  if [ -f "$dir/containerd.toml" ]; then
    if ! { [ -S "$dir/containerd.sock" ] && ctr_ version >/dev/null 2>&1; }; then
      containerd --config "$dir/containerd.toml" >>"$dir/containerd-cleanup.log" 2>&1 &
      own_containerd=$!
      for _ in $(seq 50); do ctr_ version >/dev/null 2>&1 && break; sleep 0.2; done
    fi
  fi
  if [ -S "$dir/containerd.sock" ] && ctr_ version >/dev/null 2>&1; then
    local id netns=()
    for id in $(ctr_ containers ls -q 2>/dev/null); do
      while IFS= read -r ns; do [ -n "$ns" ] && netns+=("$ns"); done < <(ctr_ containers info "$id" 2>/dev/null |
        python3 -c 'import json,sys; [print(n["path"]) for n in json.load(sys.stdin)["Spec"]["linux"]["namespaces"] if n["type"] == "network" and n.get("path")]' 2>/dev/null)
    done
    local tasks; tasks=$(ctr_ tasks ls -q 2>/dev/null)
    for id in $tasks; do ctr_ tasks kill -s KILL "$id" 2>/dev/null || true; done
    [ -z "$tasks" ] || sleep 1
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
    local ns
    for ns in $(printf '%s\n' "${netns[@]}" | sort -u); do
      case "$ns" in /var/run/netns/cni-*|/run/netns/cni-*) umount "$ns" 2>/dev/null || true; rm -f "$ns" ;; esac
    done
  fi
  if [ -n "$own_containerd" ]; then kill "$own_containerd" 2>/dev/null; wait "$own_containerd" 2>/dev/null || true; fi
  # The kubelet bind-mounts its root directory (Pods' volumes under it);
  # containerd mounts each sandbox's /dev/shm under its state directory.
  findmnt -rn -o TARGET | grep "^$dir/" | sort -r | while IFS= read -r m; do umount "$m" 2>/dev/null || true; done
  iptables -t nat -D "${nat_rule[@]}" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$dir/cni-ipam"
  log "real node cleaned up"
}

case "${1:-}" in
  check) check ;;
  prepare) prepare ;;
  drain) drain ;;
  cleanup) cleanup ;;
  up)
    [ -f "$state_root/env.sh" ] || die "no local environment: run make env-up first"
    LOCALENV_REAL_NODE=1 localenv up ;;
  down) localenv down --real-node ;;
  status) if node_ready; then echo "real-node: Ready"; else echo "real-node: down"; exit 1; fi ;;
  *) die "usage: real-node.sh check|prepare|drain|cleanup|up|down|status" ;;
esac
