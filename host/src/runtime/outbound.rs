//! Outbound HTTP from components: denied unless Spin's
//! `allowed_outbound_hosts` lists the destination; a wildcard allows only
//! public addresses (re-checked after DNS).

use http_body_util::BodyExt;
use wasmtime_wasi_http::WasiHttpHooks;

/// Outbound HTTP is denied unless the destination is allowed.
pub struct OutboundPolicy {
    allowed: Vec<String>,
}

impl OutboundPolicy {
    /// A policy allowing `allowed` (Spin's `allowed_outbound_hosts`).
    pub fn new(allowed: Vec<String>) -> Self {
        Self { allowed }
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_string();
        let host = uri.host().unwrap_or("").trim_matches(|c| c == '[' || c == ']').to_string();
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let matched: Vec<&String> = self.allowed.iter().filter(|p| outbound_allowed(p, &scheme, &host, port)).collect();
        if matched.is_empty() {
            tracing::warn!(%scheme, %host, port, "outbound HTTP denied: not in allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        // A wildcard allows public hosts only: loopback and private addresses
        // must be named explicitly (checked after DNS, against rebinding).
        let explicit = matched.iter().any(|p| !p.split("://").nth(1).unwrap_or("*").split(':').next().unwrap_or("*").contains('*'));
        drop(fut);
        Box::new(async move {
            if !explicit {
                let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|_| wasmtime_wasi_http::Error::DestinationNotFound)?
                    .collect();
                if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
                    tracing::warn!(%host, addr = %a.ip(), "outbound HTTP denied: a wildcard does not allow private or loopback addresses");
                    return Err(wasmtime_wasi_http::Error::DestinationIpProhibited);
                }
            }
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// Whether an address is on the public internet.
fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80)
                && v6.to_ipv4_mapped().is_none_or(|v4| is_public(std::net::IpAddr::V4(v4)))
        }
    }
}

/// Spin's `allowed_outbound_hosts` matching: `scheme://host[:port]`, where
/// scheme, host and port may be `*`, and a host may be `*.suffix`.
pub fn outbound_allowed(pattern: &str, scheme: &str, host: &str, port: u16) -> bool {
    let Some((p_scheme, rest)) = pattern.split_once("://") else { return false };
    let (p_host, p_port) = match rest.trim_end_matches('/').rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || p.chars().all(|c| c.is_ascii_digit() || c == '*') => (h, Some(p)),
        _ => (rest.trim_end_matches('/'), None),
    };
    let scheme_ok = p_scheme == "*" || p_scheme.eq_ignore_ascii_case(scheme);
    let host_ok = p_host == "*"
        || p_host.eq_ignore_ascii_case(host)
        || p_host.strip_prefix("*.").is_some_and(|suffix| host.to_ascii_lowercase().ends_with(&format!(".{}", suffix.to_ascii_lowercase())));
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port_ok = match p_port {
        Some("*") => true,
        Some(p) => p.parse::<u16>() == Ok(port),
        None => port == default_port,
    };
    scheme_ok && host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::{is_public, outbound_allowed};

    #[test]
    fn spin_allowed_outbound_hosts_syntax() {
        assert!(outbound_allowed("https://example.com", "https", "example.com", 443));
        assert!(!outbound_allowed("https://example.com", "http", "example.com", 80));
        assert!(!outbound_allowed("https://example.com", "https", "evil.com", 443));
        assert!(outbound_allowed("http://127.0.0.1:9000", "http", "127.0.0.1", 9000));
        assert!(!outbound_allowed("http://127.0.0.1:9000", "http", "127.0.0.1", 9001));
        assert!(outbound_allowed("*://*.example.com:*", "http", "api.example.com", 8080));
        assert!(!outbound_allowed("*://*.example.com:*", "http", "example.org", 80));
        assert!(outbound_allowed("https://*", "https", "anything.io", 443));
        assert!(!is_public("127.0.0.1".parse().unwrap()) && !is_public("10.1.2.3".parse().unwrap()));
        assert!(!is_public("::1".parse().unwrap()) && is_public("93.184.216.34".parse().unwrap()));
    }
}
