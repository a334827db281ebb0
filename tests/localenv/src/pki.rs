//! Certificates, keys and kubeconfigs of one local cluster: a CA, serving
//! certificates for the components that serve HTTPS, a client certificate
//! per client, and the service-account signing key pair. All ECDSA P-256;
//! written once per `up` into `.localenv/pki/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The subjects of the cluster's client certificates. The control plane
/// reads user and groups from them (CN, O); the audit policy leaves out the
/// components' own users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `kubectl`, the tests, the demo: `system:masters`.
    Admin,
    ControllerManager,
    Scheduler,
    Kwok,
    /// The real node's kubelet: `system:node:movieapp-node-0` in
    /// `system:nodes`, what the Node authorizer recognises (it may read the
    /// Secrets and ConfigMaps of its own Pods only).
    Node,
    /// kube-apiserver towards the kubelet (logs, exec, port-forward), which
    /// asks the API server back whether this user may (webhook
    /// authorization): `system:masters`, as kubeadm's apiserver-kubelet-client.
    ApiserverKubelet,
}

impl Client {
    pub const ALL: [Self; 6] = [
        Self::Admin,
        Self::ControllerManager,
        Self::Scheduler,
        Self::Kwok,
        Self::Node,
        Self::ApiserverKubelet,
    ];

    /// The file stem in `pki/` and the kubeconfig's user name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ControllerManager => "controller-manager",
            Self::Scheduler => "scheduler",
            Self::Kwok => "kwok",
            Self::Node => "node",
            Self::ApiserverKubelet => "apiserver-kubelet-client",
        }
    }

    fn subject(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Admin => ("movieapp-admin", Some("system:masters")),
            Self::ControllerManager => ("system:kube-controller-manager", None),
            Self::Scheduler => ("system:kube-scheduler", None),
            Self::Kwok => ("kwok", Some("system:masters")),
            Self::Node => (NODE_USER, Some("system:nodes")),
            Self::ApiserverKubelet => ("kube-apiserver-kubelet-client", Some("system:masters")),
        }
    }
}

/// The user of the real node's kubelet: `system:node:` and the node's name
/// (`components::REAL_NODE`).
const NODE_USER: &str = "system:node:movieapp-node-0";

/// The components serving HTTPS with a certificate of this CA (so their
/// health can be checked with verification on), with the names they are
/// reached by.
const SERVERS: [(&str, &[&str]); 3] = [
    (
        "apiserver",
        &[
            "127.0.0.1",
            "10.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    ),
    ("kube-controller-manager", &["127.0.0.1", "localhost"]),
    ("kube-scheduler", &["127.0.0.1", "localhost"]),
];

/// Paths of the files `generate` writes.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(state: &Path) -> Self {
        Self {
            dir: state.join("pki"),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Certificate and key of a server named in `SERVERS`.
    pub fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    pub fn client(&self, client: Client) -> (PathBuf, PathBuf) {
        self.server(client.name())
    }

    /// The service-account token signing key and its public half.
    pub fn service_account(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("sa.key"), self.dir.join("sa.pub"))
    }

    /// Writes a fresh CA and every certificate and key.
    pub fn generate(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "movieapp-localenv-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;
        write(&self.ca(), &ca_cert.pem(), false)?;
        let issuer = Issuer::new(ca, ca_key);

        for (name, names) in SERVERS {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let mut params = CertificateParams::new(names).context("server names")?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            self.leaf(name, params, &issuer)?;
        }
        for client in Client::ALL {
            let (common_name, organization) = client.subject();
            let mut params = CertificateParams::default();
            if let Some(organization) = organization {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, organization);
            }
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            self.leaf(client.name(), params, &issuer)?;
        }

        let sa = KeyPair::generate().context("generating the service-account key")?;
        let (private, public) = self.service_account();
        write(&private, &sa.serialize_pem(), true)?;
        write(&public, &sa.public_key_pem(), false)?;
        Ok(())
    }

    fn leaf(
        &self,
        name: &str,
        mut params: CertificateParams,
        issuer: &Issuer<'_, KeyPair>,
    ) -> Result<()> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().with_context(|| format!("generating the key of {name}"))?;
        let cert = params
            .signed_by(&key, issuer)
            .with_context(|| format!("signing the certificate of {name}"))?;
        let (cert_path, key_path) = self.server(name);
        write(&cert_path, &cert.pem(), false)?;
        write(&key_path, &key.serialize_pem(), true)
    }

    /// A kubeconfig for `client` against the API server at `server`.
    pub fn kubeconfig(&self, client: Client, server: &str) -> String {
        let (cert, key) = self.client(client);
        let user = client.name();
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: local
  context: {{ cluster: local, user: {user} }}
current-context: local
",
            ca = self.ca().display(),
            cert = cert.display(),
            key = key.display(),
        )
    }
}

/// Writes a file; keys readable by their owner only.
pub(crate) fn write(path: &Path, contents: &str, secret: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_certificate_and_key_is_written_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("localenv-pki-{}", std::process::id()));
        let pki = Pki::new(&dir);
        pki.generate().expect("generates");
        let mut paths = vec![pki.ca()];
        for (name, _) in SERVERS {
            let (cert, key) = pki.server(name);
            paths.extend([cert, key]);
        }
        for client in Client::ALL {
            let (cert, key) = pki.client(client);
            paths.extend([cert, key]);
        }
        let (private, public) = pki.service_account();
        paths.extend([private, public]);
        for path in &paths {
            let text = std::fs::read_to_string(path).expect("written");
            assert!(text.starts_with("-----BEGIN "), "{}", path.display());
            let mode = std::fs::metadata(path)
                .expect("exists")
                .permissions()
                .mode()
                & 0o777;
            let is_key = path.extension().is_some_and(|e| e == "key");
            assert_eq!(
                mode,
                if is_key { 0o600 } else { 0o644 },
                "{}",
                path.display()
            );
        }
        // The admin identity and the CA are what a TLS client loads.
        let (cert, key) = pki.client(Client::Admin);
        let identity = [
            std::fs::read(cert).expect("cert"),
            std::fs::read(key).expect("key"),
        ]
        .concat();
        reqwest::Identity::from_pem(&identity).expect("a usable identity");
        reqwest::Certificate::from_pem(&std::fs::read(pki.ca()).expect("ca")).expect("a usable CA");
        let kubeconfig = pki.kubeconfig(Client::Scheduler, "https://127.0.0.1:1");
        assert!(
            kubeconfig.contains("client-certificate: ") && kubeconfig.contains("scheduler.crt")
        );
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn the_kubelet_is_the_real_node_in_system_nodes() {
        assert_eq!(
            Client::Node.subject(),
            (
                format!("system:node:{}", crate::components::REAL_NODE).as_str(),
                Some("system:nodes")
            )
        );
    }
}
