//! Outbound HTTP from components: denied unless Spin's
//! `allowed_outbound_hosts` lists the destination, and then subject to the
//! operator's egress policy after DNS (loopback and private ranges only
//! where the operator allows them). Requests connect to exactly the address
//! that was vetted (HTTPS verifying the certificate for the name), so a
//! rebinding name cannot switch it between the check and the connection.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::WasiHttpHooks;

use crate::egress::EgressPolicy;

/// Outbound HTTP is denied unless the destination is allowed.
pub struct OutboundPolicy {
    allowed: Vec<String>,
    egress: Arc<EgressPolicy>,
}

impl OutboundPolicy {
    /// A policy allowing `allowed` (Spin's `allowed_outbound_hosts`) within `egress`.
    pub fn new(allowed: Vec<String>, egress: Arc<EgressPolicy>) -> Self {
        Self { allowed, egress }
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (http::Response<wasmtime_wasi_http::WasiBody>, Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>),
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
        // A wildcard reaches public addresses only, whatever the operator
        // allows: loopback and private hosts must be named.
        let wildcard_only = matched.iter().all(|p| p.split("://").nth(1).unwrap_or("*").split(':').next().unwrap_or("*").contains('*'));
        drop(fut);
        let egress = self.egress.clone();
        Box::new(async move {
            let lookup =
                tokio::net::lookup_host((host.as_str(), port)).await.map_err(|_| wasmtime_wasi_http::Error::DestinationNotFound)?;
            let lookup: Vec<std::net::SocketAddr> = lookup.collect();
            if wildcard_only && let Some(a) = lookup.iter().find(|a| crate::egress::classify(a.ip()).is_some()) {
                tracing::warn!(%host, addr = %a.ip(), "outbound HTTP denied: a wildcard does not reach private or loopback addresses");
                return Err(wasmtime_wasi_http::Error::DestinationIpProhibited);
            }
            let vetted = egress.vet(lookup).map_err(|refusal| {
                tracing::warn!(%host, port, "outbound HTTP denied: {refusal}");
                wasmtime_wasi_http::Error::DestinationIpProhibited
            })?;
            if scheme == "https" {
                return send_https(request, options, vetted[0], &host).await;
            }
            // The Host header keeps the name; the connection goes to the vetted address.
            let mut parts = request.uri().clone().into_parts();
            parts.authority = Some(vetted[0].to_string().parse().map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?);
            *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

type SendResult = Result<
    (http::Response<wasmtime_wasi_http::WasiBody>, Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>),
    wasmtime_wasi_http::Error,
>;

/// HTTPS to exactly `addr` (the vetted address), the certificate checked
/// for `host` against the public roots: what `default_send_request` does,
/// except that it would resolve the name again when connecting.
async fn send_https(
    mut request: http::Request<wasmtime_wasi_http::WasiBody>,
    options: Option<wasmtime_wasi_http::RequestOptions>,
    addr: std::net::SocketAddr,
    host: &str,
) -> SendResult {
    use wasmtime_wasi_http::Error;
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(Duration::from_secs(600));
    let tcp = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let name = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::from(ip),
        Err(_) => rustls::pki_types::ServerName::try_from(host.to_string())?,
    };
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(std::io::Error::other(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio::time::timeout(connect_timeout, tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Tls)?;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake::<_, wasmtime_wasi_http::WasiBody>(hyper_util::rt::TokioIo::new(tls)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The connection runs on its own task while the response is awaited.
    let conn = tokio::spawn(conn);
    // Origin form on the wire, as to any server that is not a proxy.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
    let response =
        tokio::time::timeout(first_byte_timeout, sender.send_request(request)).await.map_err(|_| Error::ConnectionReadTimeout)??;
    let io = async move {
        match conn.await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    };
    Ok((response.map(|body| body.map_err(Error::from).boxed_unsync()), Box::new(io)))
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
        || p_host
            .strip_prefix("*.")
            .is_some_and(|suffix| host.to_ascii_lowercase().ends_with(&format!(".{}", suffix.to_ascii_lowercase())));
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
    use super::{outbound_allowed, send_https};

    /// HTTPS goes to the vetted address, not to a fresh lookup of the name:
    /// a name that resolves nowhere here reaches a local listener that
    /// stands for the vetted address, with the name in the TLS ClientHello.
    #[test]
    fn https_connects_to_the_vetted_address_with_the_name_for_tls() {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let hello = tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let accepted = tokio::time::timeout(std::time::Duration::from_secs(60), listener.accept()).await;
                let (mut socket, _) = accepted.expect("a connection to the vetted address").unwrap();
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap();
                buf.truncate(n);
                buf
            });
            let body = http_body_util::Empty::<bytes::Bytes>::new().map_err(|never| match never {}).boxed_unsync();
            let request = http::Request::get("https://snapshots.invalid/hook").body(body).unwrap();
            let result = send_https(request, None, addr, "snapshots.invalid").await;
            let hello = hello.await.unwrap();
            assert!(hello.windows(17).any(|w| w == b"snapshots.invalid"), "the ClientHello names the host (SNI)");
            assert!(matches!(result, Err(wasmtime_wasi_http::Error::Tls(_))), "our listener is no TLS server: {:?}", result.err());
        });
    }

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
    }
}
