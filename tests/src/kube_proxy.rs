//! A loopback TCP proxy in front of the kube-apiserver, with a kubeconfig
//! that points at it: a test gives that kubeconfig to one operator process
//! and can then cut it off from the API server, or slow its requests down,
//! while every other client still reaches the server directly. TLS passes
//! through untouched (the proxy listens on the server's own host name, so
//! the certificate still matches).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with the traffic of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards every byte as it comes.
    Open,
    /// Forwards, holding each chunk the client sends back this long first.
    Slow(Duration),
    /// Closes every connection and every new one at once.
    Cut,
}

/// The proxy; stops (closing every connection) when dropped.
#[derive(Debug)]
pub struct KubeProxy {
    /// A copy of `KUBECONFIG` whose server is this proxy.
    pub kubeconfig: PathBuf,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl KubeProxy {
    /// Starts a proxy to the server of `KUBECONFIG` (which must name one
    /// cluster) and writes a kubeconfig for it beside the original, so that
    /// relative certificate paths in it still resolve.
    pub async fn start() -> Result<Self> {
        let original = std::env::var_os("KUBECONFIG").context("KUBECONFIG is not set")?;
        let original = std::env::split_paths(&original)
            .next()
            .context("KUBECONFIG is empty")?;
        let mut config = kube::config::Kubeconfig::read_from(&original)
            .with_context(|| format!("reading {}", original.display()))?;
        let clusters = config.clusters.len();
        let [named] = config.clusters.as_mut_slice() else {
            bail!(
                "{} names {clusters} clusters; the proxy serves one",
                original.display()
            );
        };
        let cluster = named
            .cluster
            .as_mut()
            .context("the kubeconfig's cluster has no settings")?;
        let server = cluster
            .server
            .clone()
            .context("the kubeconfig's cluster has no server")?;
        let (scheme, authority) = server
            .split_once("://")
            .with_context(|| format!("server {server:?} has no scheme"))?;
        let authority = authority.trim_end_matches('/');
        let (host, port) = authority
            .rsplit_once(':')
            .with_context(|| format!("server {server:?} has no port"))?;
        let upstream = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        port.parse::<u16>()
            .with_context(|| format!("server {server:?} has no port number"))?;
        let listener = TcpListener::bind(SocketAddr::new(upstream.ip(), 0))
            .await
            .context("binding the API server proxy")?;
        let local = listener.local_addr()?;
        cluster.server = Some(format!("{scheme}://{host}:{}", local.port()));
        let kubeconfig = original.with_file_name(format!(
            "kubeconfig-proxy-{}-{}",
            std::process::id(),
            local.port()
        ));
        std::fs::write(&kubeconfig, serde_json::to_vec(&config)?)
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let (mode, watching) = watch::channel(Mode::Open);
        let task = tokio::spawn(accept(listener, upstream, watching));
        Ok(Self {
            kubeconfig,
            mode,
            task,
        })
    }

    /// Switches the mode, for open connections too.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Cut);
        self.task.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *mode.borrow() == Mode::Cut {
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, upstream, mode.clone()));
    }
}

/// One connection, until either side closes it or the mode becomes `Cut`.
async fn connection(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = {
        let mode = mode.clone();
        async move {
            let mut buffer = vec![0; 64 * 1024];
            loop {
                let read = client_read.read(&mut buffer).await?;
                if read == 0 {
                    return std::io::Result::Ok(());
                }
                let current = *mode.borrow();
                if let Mode::Slow(delay) = current {
                    tokio::time::sleep(delay).await;
                }
                server_write.write_all(&buffer[..read]).await?;
            }
        }
    };
    let responses = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = requests => {}
        _ = responses => {}
        _ = mode.wait_for(|m| *m == Mode::Cut) => {}
    }
}
