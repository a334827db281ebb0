//! The block of ports one local environment listens on, and why it lies
//! below the kernel's ephemeral range.
//!
//! A port inside `net.ipv4.ip_local_port_range` can be handed by the kernel
//! to any outgoing connection as its source port: a block there is free when
//! checked, then taken (by etcd's own clients, say) before the component
//! meant for it binds. Below the range nothing takes a port but a listener.

use std::fmt;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;

use anyhow::{Context, Result, bail};

/// The first port of the default block: below the ephemeral range of Linux
/// (32768–60999 by default) and clear of the blocks 21000–21499 that
/// checkouts on a shared machine are told to use.
pub const DEFAULT_BASE: u16 = 27300;

/// Ports a block spans. Sixteen are used (see [`Slot`]); the rest are kept
/// for components still to come, so a base chosen today stays valid when
/// they arrive.
pub const BLOCK_SIZE: u16 = 32;

/// What each port of the block is for, by its offset from the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Etcd = 0,
    EtcdPeer = 1,
    KubeApiserver = 2,
    KubeControllerManager = 3,
    KubeScheduler = 4,
    Kwok = 5,
    Moto = 6,
    TmdbStub = 7,
    /// `make demo`'s operator: /metrics, /healthz, /readyz.
    DemoOperator = 8,
    /// `make demo`'s api-worker.
    DemoApiWorker = 9,
    /// The real node's kubelet (its API: logs, exec, port-forward).
    Kubelet = 10,
    /// The kubelet's `/healthz`.
    KubeletHealthz = 11,
    /// containerd's metrics (its health check).
    ContainerdMetrics = 12,
    /// `make demo`'s `kubectl port-forward` to the api-worker's Service
    /// when it runs on the real node.
    DemoPortForward = 13,
    /// The OCI registry `tests/delivery/oci-registry.sh` starts on demand.
    OciRegistry = 20,
    /// The enforced-IAM suite's own moto (`tests/suites/iam_enforced.rs`),
    /// for the length of the suite.
    IamEnforcedMoto = 21,
}

/// `BLOCK_SIZE` ports from a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct PortBlock {
    base: u16,
}

impl TryFrom<u16> for PortBlock {
    type Error = anyhow::Error;

    fn try_from(base: u16) -> Result<Self> {
        Self::new(base)
    }
}

impl From<PortBlock> for u16 {
    fn from(block: PortBlock) -> Self {
        block.base
    }
}

impl PortBlock {
    /// The block at `base`, if it fits between 1024 and 65535.
    pub fn new(base: u16) -> Result<Self> {
        if base < 1024 || u32::from(base) + u32::from(BLOCK_SIZE) > 65536 {
            bail!(
                "LOCALENV_PORT_BASE={base} is out of range: the block of {BLOCK_SIZE} ports must lie \
                 between 1024 and 65535"
            );
        }
        Ok(Self { base })
    }

    /// The block `LOCALENV_PORT_BASE` names, or the default one.
    pub fn from_env() -> Result<Self> {
        match std::env::var("LOCALENV_PORT_BASE") {
            Ok(value) if !value.trim().is_empty() => {
                Self::new(value.trim().parse().with_context(|| {
                    format!("LOCALENV_PORT_BASE={value:?} is not a port number")
                })?)
            }
            _ => Self::new(DEFAULT_BASE),
        }
    }

    pub fn base(self) -> u16 {
        self.base
    }

    pub fn port(self, slot: Slot) -> u16 {
        self.base + slot as u16
    }

    pub fn range(self) -> RangeInclusive<u16> {
        self.base..=self.base + (BLOCK_SIZE - 1)
    }

    /// Fails when the block shares a port with the ephemeral range, unless
    /// every shared port is reserved (`net.ipv4.ip_local_reserved_ports`).
    pub fn check_outside(self, ephemeral: &Ephemeral) -> Result<()> {
        let (first, last) = (*self.range().start(), *self.range().end());
        let overlap = first.max(*ephemeral.range.start())..=last.min(*ephemeral.range.end());
        if overlap.is_empty() || overlap.clone().all(|port| ephemeral.is_reserved(port)) {
            return Ok(());
        }
        let below = ephemeral.range.start().saturating_sub(BLOCK_SIZE);
        bail!(
            "the port block {self} (LOCALENV_PORT_BASE={first}) overlaps the kernel's ephemeral port \
             range {}–{} (/proc/sys/net/ipv4/ip_local_port_range): the kernel may give one of its \
             ports to an outgoing connection before the component meant for it binds it. Choose a \
             base of at most {below} (the default is {DEFAULT_BASE}), or reserve the block where \
             you may: sysctl -w net.ipv4.ip_local_reserved_ports={first}-{last}",
            ephemeral.range.start(),
            ephemeral.range.end(),
        )
    }

    /// Fails naming the first port of `slots` something already listens on.
    pub fn check_free(self, slots: &[(Slot, &str)]) -> Result<()> {
        for &(slot, user) in slots {
            let port = self.port(slot);
            if !port_free(port) {
                bail!(
                    "port {port} (for {user}) on 127.0.0.1 is already in use. Stop what uses it \
                     (`ss -tanp 'sport = :{port}'`) or choose another block with \
                     LOCALENV_PORT_BASE=<port> (blocks of {BLOCK_SIZE} ports; the default is {DEFAULT_BASE})"
                );
            }
        }
        Ok(())
    }
}

impl fmt::Display for PortBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.range().start(), self.range().end())
    }
}

/// Whether a listener could bind `port` on 127.0.0.1 now. Binds the way the
/// components do (Rust, Go and Python servers all set `SO_REUSEADDR`), so a
/// connection of an earlier run in TIME-WAIT on the port does not count.
pub fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The kernel's ephemeral port range and its reserved ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ephemeral {
    pub range: RangeInclusive<u16>,
    pub reserved: Vec<RangeInclusive<u16>>,
}

impl Ephemeral {
    /// Reads `/proc/sys/net/ipv4/ip_local_port_range` and
    /// `ip_local_reserved_ports`.
    pub fn read() -> Result<Self> {
        let range_path = "/proc/sys/net/ipv4/ip_local_port_range";
        let reserved_path = "/proc/sys/net/ipv4/ip_local_reserved_ports";
        let range =
            std::fs::read_to_string(range_path).with_context(|| format!("reading {range_path}"))?;
        // Reserving ports may be refused in a container; an unreadable list
        // reserves nothing.
        let reserved = std::fs::read_to_string(reserved_path).unwrap_or_default();
        Self::parse(&range, &reserved)
    }

    /// From the two files' contents: `"32768\t60999"` and `"8080,9148-9150"`.
    pub fn parse(range: &str, reserved: &str) -> Result<Self> {
        let bounds: Vec<u16> = range
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("ephemeral port range {range:?}"))?;
        let [low, high] = bounds[..] else {
            bail!("ephemeral port range {range:?} is not two ports");
        };
        let reserved = reserved
            .trim()
            .split(',')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (from, to) = part.split_once('-').unwrap_or((part, part));
                Ok(from.trim().parse()?..=to.trim().parse()?)
            })
            .collect::<Result<_, std::num::ParseIntError>>()
            .with_context(|| format!("reserved ports {reserved:?}"))?;
        Ok(Self {
            range: low..=high,
            reserved,
        })
    }

    fn is_reserved(&self, port: u16) -> bool {
        self.reserved.iter().any(|r| r.contains(&port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux_default() -> Ephemeral {
        Ephemeral::parse("32768\t60999\n", "\n").expect("parses")
    }

    #[test]
    fn the_default_block_lies_below_the_default_ephemeral_range() {
        let block = PortBlock::new(DEFAULT_BASE).expect("valid");
        assert!(block.check_outside(&linux_default()).is_ok());
        assert!(*block.range().end() < 32768);
    }

    #[test]
    fn the_default_block_lies_outside_this_machines_ephemeral_range() {
        let block = PortBlock::new(DEFAULT_BASE).expect("valid");
        block
            .check_outside(&Ephemeral::read().expect("readable on Linux"))
            .expect("the default block must be usable here");
    }

    #[test]
    fn blocks_that_share_a_port_with_the_ephemeral_range_are_refused() {
        let ephemeral = linux_default();
        for base in [42300, 32768 - BLOCK_SIZE + 1, 60999, 32760] {
            let error = PortBlock::new(base)
                .expect("valid")
                .check_outside(&ephemeral)
                .expect_err("overlaps")
                .to_string();
            assert!(
                error.contains("ephemeral port range 32768–60999"),
                "{error}"
            );
            assert!(
                error.contains(&format!("LOCALENV_PORT_BASE={base}")),
                "{error}"
            );
            assert!(error.contains("ip_local_reserved_ports"), "{error}");
        }
        for base in [
            1024,
            21000,
            32768 - BLOCK_SIZE,
            61000,
            65535 - BLOCK_SIZE + 1,
        ] {
            assert!(
                PortBlock::new(base)
                    .expect("valid")
                    .check_outside(&ephemeral)
                    .is_ok(),
                "{base}"
            );
        }
    }

    #[test]
    fn a_block_whose_shared_ports_are_all_reserved_is_accepted() {
        let block = PortBlock::new(42300).expect("valid");
        let reserved = Ephemeral::parse("32768 60999", "8080,42300-42331").expect("parses");
        assert!(block.check_outside(&reserved).is_ok());
        let partly = Ephemeral::parse("32768 60999", "42300-42320").expect("parses");
        assert!(block.check_outside(&partly).is_err());
        let straddling = PortBlock::new(32760).expect("valid");
        let reserved_part = Ephemeral::parse("32768 60999", "32768-32791").expect("parses");
        assert!(straddling.check_outside(&reserved_part).is_ok());
    }

    #[test]
    fn bases_out_of_range_and_garbage_are_refused() {
        assert!(PortBlock::new(80).is_err());
        assert!(PortBlock::new(65535).is_err());
        assert!(PortBlock::new(65535 - BLOCK_SIZE + 1).is_ok());
        assert!(PortBlock::new(65535 - BLOCK_SIZE + 2).is_err());
        assert!(Ephemeral::parse("32768", "").is_err());
        assert!(Ephemeral::parse("a b", "").is_err());
        assert!(Ephemeral::parse("1 2", "x-3").is_err());
    }

    #[test]
    fn a_port_in_use_is_named_with_its_user() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
        let port = listener.local_addr().expect("addr").port();
        // A block whose kwok slot is the taken port.
        let Some(base) = port.checked_sub(Slot::Kwok as u16) else {
            return;
        };
        let Ok(block) = PortBlock::new(base) else {
            return;
        };
        let error = block
            .check_free(&[(Slot::Kwok, "kwok")])
            .expect_err("taken")
            .to_string();
        assert!(
            error.contains(&format!("port {port} (for kwok)")),
            "{error}"
        );
    }
}
