//! The client's address, behind trusted reverse proxies or not (see [`TrustedProxies`]).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{HeaderMap, FORWARDED};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use ipnet::IpNet;

/// The most forwarded hops read from a header (from the right).
pub const MAX_FORWARDED_HOPS: usize = 32;

/// The client's IP address as the service believes it (a request extension): the TCP peer, or
/// the address a trusted proxy forwarded (see [`TrustedProxies`]). Absent only
/// when the router runs without a socket (router tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// The TCP peer of the connection (a request extension): a proxy's address behind one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// One `--trusted-proxy`: an IP address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<TrustedProxy, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(TrustedProxy(net));
        }
        s.parse::<IpAddr>()
            .map(|ip| TrustedProxy(IpNet::from(canonical(ip))))
            .map_err(|_| {
                format!(
                    "{s:?} is not an IP address or a CIDR block (such as 10.0.0.0/8 or fd00::/8)"
                )
            })
    }
}

impl std::fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl TrustedProxy {
    fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

/// The trusted proxies of a service (none: every peer is its own client), and how the client's
/// address is found.
///
/// A request's TCP peer is its client unless the peer is a trusted proxy (`--trusted-proxy`,
/// an IP or a CIDR). Then the proxy's forwarding header names the client: `Forwarded`
/// (RFC 7239, its `for=` parameters) when present, else `X-Forwarded-For`. The header's hops
/// are read from the right (the nearest proxy's entry last): each hop named by a trusted
/// address vouches for the one before it; the first address that is not a trusted proxy is
/// the client. A hop that names no address (`unknown`, an obfuscated `_name`, anything that
/// does not parse) stops the walk at the last trusted address; at most
/// [`MAX_FORWARDED_HOPS`] hops are read. From a peer that is not trusted the headers are
/// ignored, so a client cannot choose its own address.
///
/// The middleware ([`TrustedProxies::layer`], applied by [`Server::run`](super::Server::run)) gives each request:
/// * [`ClientAddr`]: the client's address as resolved;
/// * [`PeerAddr`]: the TCP peer;
/// * `axum::extract::ConnectInfo<SocketAddr>`: the client too (the peer when no forwarded
///   header was believed; else the forwarded address, with its port when `Forwarded` gave
///   one, else port 0), so code that reads the connection info, such as the staff desk's
///   sign-in throttle in `bizcred-web`, throttles clients rather than the proxy.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[TrustedProxy]>);

impl TrustedProxies {
    /// The given proxies.
    pub fn new(proxies: impl IntoIterator<Item = TrustedProxy>) -> TrustedProxies {
        TrustedProxies(proxies.into_iter().collect())
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|p| p.contains(ip))
    }

    /// The client of a request from `peer` with `headers`, with the port `Forwarded` gave (or
    /// 0) when it is a forwarded address.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        let peer = SocketAddr::new(canonical(peer.ip()), peer.port());
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let hops = if headers.contains_key(FORWARDED) {
            forwarded_hops(headers)
        } else if headers.contains_key(X_FORWARDED_FOR) {
            x_forwarded_for_hops(headers)
        } else {
            return peer;
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            if !self.trusts(client.ip()) {
                break;
            }
            match hop {
                Some(addr) => client = *addr,
                None => break,
            }
        }
        client
    }

    /// `router` with the client-address middleware (see [`TrustedProxies`]).
    pub fn layer(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            client_addr,
        ))
    }
}

async fn client_addr(
    State(proxies): State<TrustedProxies>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = proxies.client(peer, req.headers());
        let ext = req.extensions_mut();
        ext.insert(PeerAddr(peer));
        ext.insert(ClientAddr(client.ip()));
        ext.insert(ConnectInfo(client));
    }
    next.run(req).await
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// An IPv4 address seen through a dual-stack socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Keeps the last [`MAX_FORWARDED_HOPS`] of `hops`.
fn keep_last(hops: &mut Vec<Option<SocketAddr>>) {
    if hops.len() > MAX_FORWARDED_HOPS {
        hops.drain(..hops.len() - MAX_FORWARDED_HOPS);
    }
}

/// The hops of every `X-Forwarded-For` line, in order: addresses (`a.b.c.d`, `a.b.c.d:port`,
/// `v6`, `[v6]:port`) or `None` for anything else.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<SocketAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let Ok(value) = value.to_str() else {
            // Not text: nothing in it can be read, so nothing before it either.
            hops.clear();
            hops.push(None);
            continue;
        };
        for item in value.split(',') {
            hops.push(address(item.trim()));
            keep_last(&mut hops);
        }
    }
    hops
}

/// One address of a forwarding header, with or without a port.
fn address(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(canonical(ip), 0));
    }
    s.parse::<SocketAddr>()
        .ok()
        .map(|a| SocketAddr::new(canonical(a.ip()), a.port()))
}

/// The `for=` hops of every `Forwarded` line, in order (RFC 7239: elements separated by
/// commas, pairs by semicolons, values tokens or quoted strings). An element without `for`
/// is a hop with no address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<SocketAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(FORWARDED) {
        let Ok(value) = value.to_str() else {
            hops.clear();
            hops.push(None);
            continue;
        };
        for element in split_unquoted(value, ',') {
            let node = split_unquoted(element, ';').into_iter().find_map(|pair| {
                let (name, v) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| unquote(v.trim()))
            });
            hops.push(node.and_then(|n| forwarded_node(&n)));
            keep_last(&mut hops);
        }
    }
    hops
}

/// Splits `s` on `sep` outside double-quoted strings (a backslash escapes inside them).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A token, or a quoted string without its quotes and escapes.
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_owned(),
    }
}

/// A `for=` node (RFC 7239 section 6): `a.b.c.d`, `a.b.c.d:port`, `[v6]`, `[v6]:port`; an
/// obfuscated port is dropped; `unknown` and obfuscated identifiers name no address.
fn forwarded_node(node: &str) -> Option<SocketAddr> {
    let (host, port) = if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (v6, port)
    } else {
        match node.split_once(':') {
            // A bare IPv6 address is not RFC 7239, but it names one address all the same.
            Some(_) if node.matches(':').count() > 1 => (node, None),
            Some((h, p)) => (h, Some(p)),
            None => (node, None),
        }
    };
    let ip = canonical(host.parse::<IpAddr>().ok()?);
    let port = port.and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|p| p.parse().expect("proxy")))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn peer(s: &str) -> SocketAddr {
        s.parse().expect("peer")
    }

    fn ip(c: SocketAddr) -> String {
        c.ip().to_string()
    }

    #[test]
    fn trusted_proxy_options_parse_ips_and_cidrs() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        assert!(p.trusts("10.1.2.3".parse().expect("ip")));
        assert!(p.trusts("192.0.2.7".parse().expect("ip")));
        assert!(!p.trusts("192.0.2.8".parse().expect("ip")));
        assert!(p.trusts("fd12::1".parse().expect("ip")));
        // An IPv4 peer seen through a dual-stack socket.
        assert!(p.trusts("::ffff:10.9.9.9".parse().expect("ip")));
        let e = "proxy.example".parse::<TrustedProxy>().expect_err("a name");
        assert!(e.contains("not an IP address or a CIDR block"), "{e}");
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let p = proxies(&["10.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("forwarded", "for=198.51.100.9"),
        ]);
        assert_eq!(
            p.client(peer("203.0.113.5:4000"), &h),
            peer("203.0.113.5:4000")
        );
        // No proxy configured at all.
        assert_eq!(
            TrustedProxies::default().client(peer("10.0.0.1:1"), &h),
            peer("10.0.0.1:1")
        );
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right_through_trusted_hops() {
        let p = proxies(&["10.0.0.0/8"]);
        // A client-supplied spoof on the left is not believed: the first untrusted address
        // from the right is the client.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.9, 10.0.0.2")]);
        assert_eq!(ip(p.client(peer("10.0.0.1:5"), &h)), "198.51.100.9");
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.9:8443"),
        ]);
        assert_eq!(ip(p.client(peer("10.0.0.1:5"), &h)), "198.51.100.9");
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, nonsense, 10.0.0.7")]);
        assert_eq!(ip(p.client(peer("10.0.0.1:5"), &h)), "10.0.0.7");
        // Every hop trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(ip(p.client(peer("10.0.0.1:5"), &h)), "10.0.0.3");
        // An IPv6 client.
        let h = headers(&[("x-forwarded-for", "2001:db8::7")]);
        assert_eq!(ip(p.client(peer("10.0.0.1:5"), &h)), "2001:db8::7");
    }

    #[test]
    fn forwarded_is_preferred_and_parsed_per_rfc_7239() {
        let p = proxies(&["10.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.1"),
            (
                "forwarded",
                "for=192.0.2.43;proto=https, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
            ),
        ]);
        assert_eq!(
            p.client(peer("10.0.0.1:80"), &h),
            peer("[2001:db8:cafe::17]:4711")
        );
        let h = headers(&[("forwarded", "for=\"192.0.2.60:8080\";proto=http")]);
        assert_eq!(p.client(peer("10.0.0.1:80"), &h), peer("192.0.2.60:8080"));
        // unknown and obfuscated nodes name no address: the proxy stays the client.
        for v in ["for=unknown", "for=_hidden", "proto=https", "for=\"[::1\""] {
            let h = headers(&[("forwarded", v)]);
            assert_eq!(
                p.client(peer("10.0.0.1:80"), &h),
                peer("10.0.0.1:80"),
                "{v}"
            );
        }
        // An obfuscated port is dropped, the address kept.
        let h = headers(&[("forwarded", "for=\"192.0.2.60:_p1\"")]);
        assert_eq!(p.client(peer("10.0.0.1:80"), &h), peer("192.0.2.60:0"));
        // A comma inside a quoted value does not split elements.
        assert_eq!(
            split_unquoted("for=\"a,b\";x=1, for=c", ','),
            vec!["for=\"a,b\";x=1", " for=c"]
        );
    }

    #[test]
    fn only_the_last_hops_are_read() {
        let p = proxies(&["10.0.0.0/8"]);
        let mut list = vec!["198.51.100.1".to_owned()];
        list.extend((0..100).map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1)));
        let h = headers(&[("x-forwarded-for", &list.join(", "))]);
        // The real client is beyond the bound: the walk ends at the oldest hop it read.
        let c = p.client(peer("10.0.0.1:5"), &h);
        assert!(p.trusts(c.ip()), "{c}");
        assert_eq!(x_forwarded_for_hops(&h).len(), MAX_FORWARDED_HOPS);
    }
}
