//! The components of the local environment: how each starts, what it
//! needs first, which ports it takes and how its health is checked. A new
//! component is one more variant here; the supervisor does the rest.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::health::{Http, Probe};
use crate::pki::{Client, Pki};
use crate::ports::{PortBlock, Slot};
use crate::process::Spec;

/// Where one environment lives and what it runs; saved in
/// `.localenv/localenv.json` so `status`, `restart` and `down` act on the
/// environment as it was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The checkout.
    pub root: PathBuf,
    /// `.localenv/` of the checkout (a temporary directory in tests).
    pub state: PathBuf,
    pub ports: PortBlock,
    /// The control-plane binaries.
    pub bin: PathBuf,
    /// The venv holding moto.
    pub venv: PathBuf,
    /// The key the TMDB stub accepts.
    pub tmdb_api_key: String,
    /// The real node, when it runs (`LOCALENV_REAL_NODE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_node: Option<RealNode>,
    /// Why there is no real node although one was asked for if possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_real_node: Option<String>,
}

/// What `tests/localenv/real-node.sh prepare` made for the real node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealNode {
    /// Its state: containerd's and the kubelet's configuration, roots and
    /// sockets (`/var/lib/movieapp-real-node/<base>`, outside `.localenv/`,
    /// whose removal the node's mounts would block).
    pub dir: PathBuf,
    /// The kubelet and the pause image (`build.sh --kubelet`).
    pub bin: PathBuf,
    /// The node's InternalIP (the kubelet refuses a loopback one).
    pub node_ip: String,
    /// Where its Pods reach moto and the TMDB stub (the bridge's address,
    /// DNAT to 127.0.0.1 on their ports).
    #[serde(default = "default_gateway")]
    pub gateway: String,
}

/// real-node.sh's GATEWAY, for a layout saved before the field existed.
fn default_gateway() -> String {
    "10.244.50.1".to_owned()
}

impl Layout {
    pub fn port(&self, slot: Slot) -> u16 {
        self.ports.port(slot)
    }

    pub fn pki(&self) -> Pki {
        Pki::new(&self.state)
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.state.join("logs").join(format!("{name}.log"))
    }

    pub fn pids(&self) -> PathBuf {
        self.state.join("pids")
    }

    /// The admin's kubeconfig is `kubeconfig`, the components' are `<name>.kubeconfig`.
    pub fn kubeconfig(&self, client: Client) -> PathBuf {
        match client {
            Client::Admin => self.state.join("kubeconfig"),
            other => self.state.join(format!("{}.kubeconfig", other.name())),
        }
    }

    pub fn apiserver_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port(Slot::KubeApiserver))
    }

    pub fn http(&self) -> Result<Http> {
        Http::new(&self.pki(), self.apiserver_url())
    }

    /// The components this environment runs: the real node's two only
    /// with a real node.
    pub fn components(&self) -> Vec<Component> {
        Component::ALL
            .into_iter()
            .filter(|c| self.real_node.is_some() || !c.is_real_node())
            .collect()
    }
}

/// The node kwok keeps Ready and runs Pods on.
pub const KWOK_NODE: &str = "kwok-node-0";

/// The real node's name (a kubelet with containerd; `tests/localenv/real-node.sh`).
pub const REAL_NODE: &str = "movieapp-node-0";

/// The real node's label and taint (`NoSchedule`): only Pods that tolerate
/// it run there, and kwok's node keeps the others.
pub const REAL_NODE_LABEL: &str = "movieapp.io/real-node";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kwok,
    Moto,
    TmdbStub,
    /// The real node's container runtime.
    Containerd,
    /// The real node's kubelet.
    Kubelet,
}

impl Component {
    /// Every component, in the order they start and are listed; they stop
    /// in reverse (clients before their servers). containerd and the
    /// kubelet run only in an environment with a real node
    /// ([`Layout::components`]).
    pub const ALL: [Self; 9] = [
        Self::Moto,
        Self::TmdbStub,
        Self::Etcd,
        Self::KubeApiserver,
        Self::KubeControllerManager,
        Self::KubeScheduler,
        Self::Kwok,
        Self::Containerd,
        Self::Kubelet,
    ];

    /// One of the real node's.
    pub fn is_real_node(self) -> bool {
        matches!(self, Self::Containerd | Self::Kubelet)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::KubeApiserver => "kube-apiserver",
            Self::KubeControllerManager => "kube-controller-manager",
            Self::KubeScheduler => "kube-scheduler",
            Self::Kwok => "kwok",
            Self::Moto => "moto",
            Self::TmdbStub => "tmdb-stub",
            Self::Containerd => "containerd",
            Self::Kubelet => "kubelet",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|c| c.name() == name) {
            Some(component) => Ok(component),
            None => bail!(
                "unknown component {name:?}; the components are: {}",
                Self::ALL.map(Self::name).join(", ")
            ),
        }
    }

    /// The ports it listens on.
    pub fn slots(self) -> &'static [Slot] {
        match self {
            Self::Etcd => &[Slot::Etcd, Slot::EtcdPeer],
            Self::KubeApiserver => &[Slot::KubeApiserver],
            Self::KubeControllerManager => &[Slot::KubeControllerManager],
            Self::KubeScheduler => &[Slot::KubeScheduler],
            Self::Kwok => &[Slot::Kwok],
            Self::Moto => &[Slot::Moto],
            Self::TmdbStub => &[Slot::TmdbStub],
            Self::Containerd => &[Slot::ContainerdMetrics],
            Self::Kubelet => &[Slot::Kubelet, Slot::KubeletHealthz],
        }
    }

    /// What must be healthy before it starts.
    pub fn needs(self) -> &'static [Self] {
        match self {
            Self::KubeApiserver => &[Self::Etcd],
            Self::KubeControllerManager | Self::KubeScheduler | Self::Kwok => {
                &[Self::KubeApiserver]
            }
            Self::Kubelet => &[Self::KubeApiserver, Self::Containerd],
            Self::Etcd | Self::Moto | Self::TmdbStub | Self::Containerd => &[],
        }
    }

    /// How long it may take from start to healthy (a loaded 2-core machine
    /// included: moto imports for about 10 s there; the real node is Ready
    /// about 20 s after the kubelet starts).
    pub fn start_timeout(self) -> Duration {
        Duration::from_secs(match self {
            Self::TmdbStub => 20,
            Self::Etcd | Self::Containerd => 30,
            Self::Kubelet => 90,
            _ => 60,
        })
    }

    pub fn probe(self, layout: &Layout) -> Probe {
        let port = |slot| layout.port(slot);
        match self {
            Self::Etcd => Probe::get(format!("http://127.0.0.1:{}/health", port(Slot::Etcd))),
            Self::KubeApiserver => Probe::get(format!("{}/readyz", layout.apiserver_url())),
            Self::KubeControllerManager => Probe::get(format!(
                "https://127.0.0.1:{}/healthz",
                port(Slot::KubeControllerManager)
            )),
            Self::KubeScheduler => Probe::get(format!(
                "https://127.0.0.1:{}/healthz",
                port(Slot::KubeScheduler)
            )),
            Self::Kwok => Probe::NodeReady {
                node: KWOK_NODE.to_owned(),
            },
            Self::Moto => Probe::get(format!("http://127.0.0.1:{}/moto-api/", port(Slot::Moto))),
            Self::TmdbStub => {
                Probe::get(format!("http://127.0.0.1:{}/healthz", port(Slot::TmdbStub)))
            }
            Self::Containerd => Probe::get(format!(
                "http://127.0.0.1:{}/v1/metrics",
                port(Slot::ContainerdMetrics)
            )),
            // Ready, not merely /healthz: registered, its runtime and its
            // network up (the CNI configuration loaded).
            Self::Kubelet => Probe::NodeReady {
                node: REAL_NODE.to_owned(),
            },
        }
    }

    /// Its command line, logging to `.localenv/logs/<name>.log`.
    pub fn spec(self, layout: &Layout) -> Spec {
        let port = |slot| layout.port(slot).to_string();
        let bin = |name: &str| layout.bin.join(name);
        let file = |path: PathBuf| path.into_os_string();
        let pki = layout.pki();
        let real_node = layout.real_node.clone().unwrap_or_default();
        let spec = match self {
            Self::Moto => Spec::new(self.name(), layout.venv.join("bin/moto_server")).args([
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port(Slot::Moto),
            ]),
            Self::TmdbStub => Spec::new(self.name(), "python3").args([
                file(layout.root.join("tests/tmdb-stub/tmdb_stub.py")),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port(Slot::TmdbStub).into(),
                "--api-key".into(),
                layout.tmdb_api_key.clone().into(),
            ]),
            // fsync off: this etcd holds throw-away test state, and fsync
            // dominates its latency.
            Self::Etcd => {
                let client = format!("http://127.0.0.1:{}", port(Slot::Etcd));
                let peer = format!("http://127.0.0.1:{}", port(Slot::EtcdPeer));
                Spec::new(self.name(), bin("etcd")).args([
                    "--name".into(),
                    "local".into(),
                    "--data-dir".into(),
                    file(layout.state.join("etcd")),
                    "--listen-client-urls".into(),
                    client.clone().into(),
                    "--advertise-client-urls".into(),
                    client.into(),
                    "--listen-peer-urls".into(),
                    peer.clone().into(),
                    "--initial-advertise-peer-urls".into(),
                    peer.clone().into(),
                    "--initial-cluster".into(),
                    format!("local={peer}").into(),
                    "--unsafe-no-fsync".into(),
                    "--log-level".into(),
                    "warn".into(),
                ])
            }
            // Service IPs: a /16, as each MovieApp has a Service (a /24 ran
            // out at about 250 and make bench applies 500).
            Self::KubeApiserver => {
                let (cert, key) = pki.server("apiserver");
                let (sa_key, sa_pub) = pki.service_account();
                let (kubelet_cert, kubelet_key) = pki.client(Client::ApiserverKubelet);
                Spec::new(self.name(), bin("kube-apiserver")).args([
                    "--etcd-servers".into(),
                    format!("http://127.0.0.1:{}", port(Slot::Etcd)).into(),
                    "--bind-address".into(),
                    "127.0.0.1".into(),
                    "--advertise-address".into(),
                    "127.0.0.1".into(),
                    "--secure-port".into(),
                    port(Slot::KubeApiserver).into(),
                    "--tls-cert-file".into(),
                    file(cert),
                    "--tls-private-key-file".into(),
                    file(key),
                    "--client-ca-file".into(),
                    file(pki.ca()),
                    "--service-account-issuer".into(),
                    "https://kubernetes.default.svc.cluster.local".into(),
                    "--service-account-key-file".into(),
                    file(sa_pub),
                    "--service-account-signing-key-file".into(),
                    file(sa_key),
                    "--authorization-mode".into(),
                    "Node,RBAC".into(),
                    "--service-cluster-ip-range".into(),
                    "10.0.0.0/16".into(),
                    "--endpoint-reconciler-type".into(),
                    "none".into(),
                    "--allow-privileged=true".into(),
                    "--profiling=false".into(),
                    "--audit-policy-file".into(),
                    file(layout.state.join("audit-policy.yaml")),
                    "--audit-log-path".into(),
                    file(layout.state.join("audit.log")),
                    "--audit-log-format".into(),
                    "json".into(),
                    "--audit-log-mode".into(),
                    "batch".into(),
                    // logs, exec and port-forward reach a real node's
                    // kubelet at its InternalIP (its name resolves nowhere),
                    // with a client certificate the kubelet authenticates.
                    // The kubelet's serving certificate is its own
                    // self-signed one: not verified (no
                    // --kubelet-certificate-authority), as kwok's isn't.
                    "--kubelet-preferred-address-types".into(),
                    "InternalIP,Hostname".into(),
                    "--kubelet-client-certificate".into(),
                    file(kubelet_cert),
                    "--kubelet-client-key".into(),
                    file(kubelet_key),
                ])
            }
            // 200 requests/s instead of client-go's default of 20, at which
            // making the ReplicaSets and Pods of 500 Deployments held them
            // all from Ready for 120 s (docs/benchmarks.md).
            Self::KubeControllerManager => {
                let (sa_key, _) = pki.service_account();
                Spec::new(self.name(), bin(self.name()))
                    .args(self.secure_serving(layout, Client::ControllerManager))
                    .args([
                        "--service-account-private-key-file".into(),
                        file(sa_key),
                        "--root-ca-file".into(),
                        file(pki.ca()),
                        "--use-service-account-credentials=true".into(),
                        "--cluster-name".into(),
                        "movieapp-local".into(),
                        "--kube-api-qps".into(),
                        "200".into(),
                        "--kube-api-burst".into(),
                        "400".into(),
                        "--controllers".into(),
                        "*,-nodeipam,-cloud-node-lifecycle,-route,-service,-persistentvolume-binder,\
                         -attachdetach,-persistentvolume-expander,-ephemeral-volume,-pvc-protection,\
                         -pv-protection,-csrsigning,-csrapproving,-csrcleaner,-bootstrapsigner,\
                         -tokencleaner"
                            .into(),
                    ])
            }
            Self::KubeScheduler => Spec::new(self.name(), bin(self.name()))
                .args(self.secure_serving(layout, Client::Scheduler)),
            Self::Kwok => Spec::new(self.name(), bin("kwok")).args([
                "--kubeconfig".into(),
                file(layout.kubeconfig(Client::Kwok)),
                "--config".into(),
                file(layout.bin.join("kwok-stages.yaml")),
                "--manage-all-nodes=false".into(),
                "--manage-nodes-with-annotation-selector".into(),
                "kwok.x-k8s.io/node=fake".into(),
                "--manage-nodes-with-label-selector=".into(),
                "--manage-single-node=".into(),
                "--node-lease-duration-seconds".into(),
                "40".into(),
                "--node-ip".into(),
                "127.0.0.1".into(),
                "--cidr".into(),
                "10.244.0.0/16".into(),
                "--server-address".into(),
                format!("127.0.0.1:{}", port(Slot::Kwok)).into(),
            ]),
            // Its configuration, written by real-node.sh prepare, names
            // its root, state, sockets and metrics port.
            Self::Containerd => Spec::new(self.name(), "containerd").args([
                "--config".into(),
                file(real_node.dir.join("containerd.toml")),
            ]),
            Self::Kubelet => Spec::new(self.name(), real_node.bin.join("kubelet")).args([
                "--config".into(),
                file(real_node.dir.join("kubelet.yaml")),
                "--kubeconfig".into(),
                file(layout.kubeconfig(Client::Node)),
                "--root-dir".into(),
                file(real_node.dir.join("kubelet")),
                "--cert-dir".into(),
                file(real_node.dir.join("kubelet-pki")),
                "--hostname-override".into(),
                REAL_NODE.into(),
                "--node-ip".into(),
                real_node.node_ip.clone().into(),
                "--node-labels".into(),
                format!("{REAL_NODE_LABEL}=true").into(),
            ]),
        };
        spec.log(layout.log(self.name())).detached()
    }

    /// What kube-controller-manager and kube-scheduler share: one
    /// kubeconfig for the API and for delegated authentication and
    /// authorization, `/healthz` on their secure port with a certificate of
    /// the CA (so it is checked with verification on), no leader election.
    fn secure_serving(self, layout: &Layout, client: Client) -> Vec<OsString> {
        let kubeconfig = layout.kubeconfig(client).into_os_string();
        let (cert, key) = layout.pki().server(self.name());
        let slot = self.slots()[0];
        vec![
            "--kubeconfig".into(),
            kubeconfig.clone(),
            "--authentication-kubeconfig".into(),
            kubeconfig.clone(),
            "--authorization-kubeconfig".into(),
            kubeconfig,
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--secure-port".into(),
            layout.port(slot).to_string().into(),
            "--tls-cert-file".into(),
            cert.into_os_string(),
            "--tls-private-key-file".into(),
            key.into_os_string(),
            "--leader-elect=false".into(),
        ]
    }

    /// Work between its needs being healthy and its start.
    pub async fn prepare(self, layout: &Layout, http: &Http) -> Result<()> {
        match self {
            // The one fake node: kwok manages nodes with this annotation,
            // keeps them Ready and runs the Pods bound to them.
            Self::Kwok => {
                http.apply(&format!("/api/v1/nodes/{KWOK_NODE}"), &kwok_node())
                    .await?;
            }
            // The sandbox image, built here and never pulled (containerd's
            // sandbox_image names it).
            Self::Kubelet => {
                // A Node left by an earlier kubelet of this environment
                // (make real-node-down cordons it) would stay unschedulable.
                http.delete(&format!("/api/v1/nodes/{REAL_NODE}")).await?;
                let node = layout
                    .real_node
                    .as_ref()
                    .context("the environment has no real node")?;
                let output = std::process::Command::new("ctr")
                    .arg("-a")
                    .arg(node.dir.join("containerd.sock"))
                    .args(["-n", "k8s.io", "images", "import"])
                    .arg(node.bin.join("pause.tar"))
                    .output()
                    .context("running ctr")?;
                if !output.status.success() {
                    bail!(
                        "ctr images import {}: {}",
                        node.bin.join("pause.tar").display(),
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn kwok_node() -> serde_json::Value {
    let resources = json!({ "cpu": "1000", "memory": "4Ti", "pods": "2000" });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": KWOK_NODE,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "type": "kwok",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": KWOK_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": { "architecture": "amd64", "kubeletVersion": "fake", "operatingSystem": "linux" },
            "phase": "Running",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_has_its_own_ports_and_starts_after_what_it_needs() {
        let mut slots: Vec<u16> = Component::ALL
            .iter()
            .flat_map(|c| c.slots().iter().map(|s| *s as u16))
            .collect();
        let count = slots.len();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), count, "a port is shared");
        for (i, component) in Component::ALL.iter().enumerate() {
            for need in component.needs() {
                let at = Component::ALL.iter().position(|c| c == need);
                assert!(at.is_some_and(|at| at < i), "{component:?} before {need:?}");
            }
            assert_eq!(
                Component::from_name(component.name()).ok(),
                Some(*component)
            );
        }
        let error = Component::from_name("dockerd")
            .expect_err("unknown")
            .to_string();
        assert!(error.contains("kube-scheduler"), "{error}");
    }

    #[test]
    fn the_real_node_runs_only_in_an_environment_that_has_one() {
        // A layout saved before the real node existed still loads.
        let saved = r#"{"root": "/r", "state": "/r/.localenv", "ports": 27300,
            "bin": "/b", "venv": "/v", "tmdb_api_key": "k"}"#;
        let mut layout: Layout = serde_json::from_str(saved).expect("loads");
        assert_eq!(layout.real_node, None);
        assert!(!layout.components().iter().any(|c| c.is_real_node()));
        assert_eq!(layout.components().len(), Component::ALL.len() - 2);
        layout.real_node = Some(RealNode {
            dir: "/var/lib/movieapp-real-node/27300".into(),
            bin: "/k".into(),
            node_ip: "192.0.2.2".into(),
            gateway: "10.244.50.1".into(),
        });
        assert_eq!(layout.components(), Component::ALL.to_vec());
        let kubelet = Component::Kubelet.spec(&layout);
        let args: Vec<String> = kubelet
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for expected in ["--node-ip", "192.0.2.2", "--hostname-override", REAL_NODE] {
            assert!(args.iter().any(|a| a == expected), "{expected}: {args:?}");
        }
        assert!(
            args.iter().any(|a| a.ends_with("node.kubeconfig")),
            "the kubelet's own identity: {args:?}"
        );
    }
}
