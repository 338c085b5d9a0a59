//! Who the client is: the address rate limits are keyed by.
//!
//! The socket's peer is the client unless it is one of `http.trusted_proxies`. Behind a trusted
//! proxy, the client is the right-most address in `X-Forwarded-For` (or, without it, `Forwarded`)
//! that is not itself a trusted proxy: every proxy appends the address it saw, so addresses to the
//! left of the first untrusted one are whatever the client chose to send. Headers from an
//! untrusted peer are ignored, so nobody escapes a limit by inventing them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, header};
use forwarded_header_value::ForwardedHeaderValue;
use ipnet::IpNet;
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

use crate::error::ApiError;
use crate::state::AppState;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address as [`client_ip`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client address of a request that arrived from `peer` with `headers`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    // Right to left: the first address no trusted proxy owns is the client. If every hop is a
    // trusted proxy, the left-most one is as close to the client as we can tell.
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or_else(|| chain.first())
        .copied()
        .unwrap_or(peer)
}

/// Addresses the proxies recorded, left (client side) to right (our side). Empty when there is
/// no header or it does not parse.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let joined = |name: &str| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    if let Some(xff) = joined(X_FORWARDED_FOR) {
        return xff
            .split(',')
            .map(str::trim)
            .map(|part| {
                part.parse::<IpAddr>()
                    .ok()
                    .or_else(|| part.parse::<SocketAddr>().ok().map(|s| s.ip()))
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
    }
    if let Some(forwarded) = joined(header::FORWARDED.as_str()) {
        return ForwardedHeaderValue::from_forwarded(&forwarded)
            .map(|value| {
                value
                    .iter()
                    .map(|stanza| stanza.forwarded_for_ip())
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
    }
    Vec::new()
}

/// IPv4 addresses arriving as IPv4-mapped IPv6 compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn peer_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = peer_of(&parts.extensions)
            .ok_or_else(|| ApiError::Internal("the server provides no peer address".into()))?;
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.settings.http.trusted_proxies,
        )))
    }
}

/// The per-client limit's key: the client address, through trusted proxies.
#[derive(Debug, Clone)]
pub struct ClientIpKeyExtractor {
    trusted: std::sync::Arc<[IpNet]>,
}

impl ClientIpKeyExtractor {
    /// An extractor believing `trusted` proxies.
    pub fn new(trusted: &[IpNet]) -> ClientIpKeyExtractor {
        ClientIpKeyExtractor {
            trusted: trusted.into(),
        }
    }
}

impl KeyExtractor for ClientIpKeyExtractor {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = peer_of(request.extensions()).ok_or(GovernorError::UnableToExtractKey)?;
        Ok(client_ip(peer, request.headers(), &self.trusted))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("a network")).collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_ip(ip("198.51.100.7"), &h, &[]), ip("198.51.100.7"));
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("198.51.100.7"), &h, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client claimed 1.2.3.4; the proxy saw 203.0.113.9; a second proxy saw the first.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_is_read_without_x_forwarded_for() {
        let trusted = nets(&["127.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        )]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &trusted),
            ip("2001:db8:cafe::17")
        );
    }

    #[test]
    fn a_garbled_header_leaves_the_proxy_as_the_client() {
        let trusted = nets(&["127.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let trusted = nets(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("203.0.113.9")
        );
    }
}
