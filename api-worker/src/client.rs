//! Where a request came from, resolved once per request by [`resolve`] and
//! read by handlers through the [`Client`] extractor.
//!
//! Behind the shipped edge (API Gateway → VPC link → NLB → Pod) the TCP peer
//! is a proxy. Its forwarded header (`x-forwarded-for` unless configured) is
//! believed only when the peer is in the trusted ranges, and then read from
//! the right: the right-most address that is not itself a trusted proxy is
//! the client. Whatever a client writes into the header lies to the left of
//! what the proxies appended, so it is never reached. A header from any
//! other peer is ignored.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// An address range: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let invalid =
            || format!("{value:?} is not an address range such as 10.0.0.0/8 or fd00::/8");
        let (address, prefix) = value.split_once('/').unwrap_or((value, ""));
        let network = address
            .parse::<IpAddr>()
            .map_err(|_| invalid())?
            .to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(invalid)?
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// How to find the client behind proxies.
#[derive(Debug, Clone)]
pub struct ClientResolver {
    trusted: Vec<IpRange>,
    header: HeaderName,
}

impl Default for ClientResolver {
    /// Trusts no proxy: the client is the peer.
    fn default() -> Self {
        Self {
            trusted: Vec::new(),
            header: HeaderName::from_static("x-forwarded-for"),
        }
    }
}

static FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// An entry of a forwarded header: `203.0.113.7`, `203.0.113.7:4711`,
/// `2001:db8::1` or `[2001:db8::1]:4711`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|addr| addr.ip().to_canonical())
}

impl ClientResolver {
    pub fn new(trusted: Vec<IpRange>, header: &str) -> anyhow::Result<Self> {
        let header = HeaderName::try_from(header.trim().to_ascii_lowercase())
            .map_err(|_| anyhow::anyhow!("{header:?} is not an HTTP header name"))?;
        Ok(Self { trusted, header })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|range| range.contains(ip))
    }

    /// The client of a request whose TCP peer is `peer`.
    pub fn client(&self, parts: &Parts, peer: Option<IpAddr>) -> Client {
        let https_edge = parts.extensions.get::<HttpsEdge>().is_some();
        let Some(peer) = peer.map(|ip| ip.to_canonical()) else {
            return Client {
                https: https_edge,
                ..Client::UNKNOWN
            };
        };
        if !self.trusts(peer) {
            return Client {
                address: peer,
                https: https_edge,
            };
        }
        // Every header line in order, entries right to left.
        let lines: Vec<&HeaderValue> = parts.headers.get_all(&self.header).iter().collect();
        let mut address = peer;
        'lines: for line in lines.iter().rev() {
            let Ok(line) = line.to_str() else { break };
            for entry in line.rsplit(',') {
                let Some(hop) = forwarded_address(entry) else {
                    // Unreadable: nothing left of it can be believed.
                    break 'lines;
                };
                address = hop;
                if !self.trusts(hop) {
                    break 'lines;
                }
            }
        }
        let https = parts
            .headers
            .get_all(&FORWARDED_PROTO)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        Client {
            address,
            https: https_edge || https,
        }
    }
}

fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Marks a request that came through an edge serving HTTPS only (API
/// Gateway's HTTP API, in front of the Lambda function): its answer carries
/// HSTS though no proxy header says how the client connected.
#[derive(Debug, Clone, Copy)]
pub struct HttpsEdge;

/// Who sent a request, as [`resolve`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub address: IpAddr,
    /// The request reached the edge over HTTPS (a trusted proxy said so).
    pub https: bool,
}

impl Client {
    /// A request without a peer address (only in tests that build requests by hand).
    pub const UNKNOWN: Self = Self {
        address: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        https: false,
    };

    /// The key of per-client limits: the address, IPv6 by its /64 (one
    /// host usually holds a whole /64, so single addresses are free to it).
    pub fn key(&self) -> IpAddr {
        match self.address {
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
            v4 => v4,
        }
    }
}

/// Middleware: finds the client once and records it for the handlers; adds
/// HSTS to answers of requests that came over HTTPS.
pub async fn resolve(
    State(resolver): State<ClientResolver>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let client = resolver.client(&parts, peer(&parts));
    parts.extensions.insert(client);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if client.https {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        // Without the middleware (a router built without `app`): the peer.
        Ok(parts
            .extensions
            .get::<Self>()
            .copied()
            .unwrap_or_else(|| ClientResolver::default().client(parts, peer(parts))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|r| r.parse().expect("range")).collect()
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn ranges_parse_and_match() {
        let range: IpRange = "10.0.0.0/8".parse().expect("range");
        assert!(range.contains(ip("10.1.2.3")));
        assert!(range.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!range.contains(ip("11.0.0.1")));
        assert!(!range.contains(ip("fd00::1")));
        let v6: IpRange = "fd00::/8".parse().expect("range");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let one: IpRange = "192.0.2.1".parse().expect("range");
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let all: IpRange = "0.0.0.0/0".parse().expect("range");
        assert!(all.contains(ip("203.0.113.7")));
        for bad in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "example.com",
            "10.0.0.0/x",
            "10/8",
        ] {
            let error = bad.parse::<IpRange>().expect_err(bad);
            assert!(error.contains("address range"), "{error}");
        }
    }

    #[test]
    fn the_header_is_ignored_from_an_untrusted_peer() {
        let resolver =
            ClientResolver::new(ranges(&["10.0.0.0/8"]), "X-Forwarded-For").expect("resolver");
        let request = parts(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = resolver.client(&request, Some(ip("203.0.113.7")));
        assert_eq!(client.address, ip("203.0.113.7"));
        assert!(!client.https);
    }

    #[test]
    fn a_trusted_peer_is_read_from_the_right() {
        let resolver = ClientResolver::new(ranges(&["10.0.0.0/8", "fd00::/8"]), "x-forwarded-for")
            .expect("resolver");
        for (header, expected) in [
            // The client's own claim stands left of what the proxy appended.
            ("198.51.100.9, 203.0.113.7", "203.0.113.7"),
            ("203.0.113.7, 10.0.0.5", "203.0.113.7"),
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::1]:4711, 10.1.1.1", "2001:db8::1"),
            ("garbage, 203.0.113.7", "203.0.113.7"),
            // Nothing readable: the last trusted hop stands for the client.
            ("10.0.0.9, not-an-ip", "10.0.0.2"),
            ("10.0.0.7, 10.0.0.8", "10.0.0.7"),
        ] {
            let request = parts(&[("x-forwarded-for", header)]);
            assert_eq!(
                resolver.client(&request, Some(ip("10.0.0.2"))).address,
                ip(expected),
                "{header}"
            );
        }
        // Several header lines read as one list.
        let request = parts(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(
            resolver.client(&request, Some(ip("10.0.0.2"))).address,
            ip("203.0.113.7")
        );
        // No header: the peer.
        assert_eq!(
            resolver.client(&parts(&[]), Some(ip("10.0.0.2"))).address,
            ip("10.0.0.2")
        );
        let https = parts(&[("x-forwarded-proto", "https")]);
        assert!(resolver.client(&https, Some(ip("10.0.0.2"))).https);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = Client {
            address: ip("2001:db8:1:2:aaaa::1"),
            https: false,
        };
        let b = Client {
            address: ip("2001:db8:1:2:bbbb::9"),
            https: false,
        };
        let c = Client {
            address: ip("2001:db8:1:3::1"),
            https: false,
        };
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        let v4 = Client {
            address: ip("203.0.113.7"),
            https: false,
        };
        assert_eq!(v4.key(), ip("203.0.113.7"));
    }
}
