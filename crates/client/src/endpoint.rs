//! Where a server is: `http://host:port` or `https://host:port` (a bare `host:port` is plain
//! HTTP), and the `Host` its requests are signed with.

use std::fmt;

use reqwest::Url;

use crate::error::Error;

/// A server's base URL, parsed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme and authority, no path, no trailing `/`.
    base: String,
    /// `host[:port]` as the HTTP stack sends it in `Host` (a default port is left out), so the
    /// signed header is the one received.
    host: String,
    https: bool,
}

impl Endpoint {
    pub fn parse(endpoint: &str) -> Result<Endpoint, Error> {
        let bad = |why: &str| Error::Endpoint(format!("{why}: {endpoint}"));
        let full = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let url = Url::parse(&full).map_err(|_| bad("the endpoint is not a URL"))?;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(bad("the endpoint must be an http:// or https:// URL")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
            return Err(bad("the endpoint must be only a scheme, a host and a port"));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(bad("the endpoint has no host")),
        };
        Ok(Endpoint {
            base: format!("{}://{host}", url.scheme()),
            host,
            https,
        })
    }

    /// `Host` as sent and signed.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The URL of `target` (a path with its query, starting with `/`) on this server.
    pub fn url(&self, target: &str) -> String {
        format!("{}{target}", self.base)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_hosts_and_ports() {
        let e = Endpoint::parse("127.0.0.1:9723").unwrap();
        assert_eq!((e.host(), e.is_https()), ("127.0.0.1:9723", false));
        assert_eq!(e.url("/?A=1"), "http://127.0.0.1:9723/?A=1");
        let e = Endpoint::parse("https://Example.COM:8443/").unwrap();
        assert_eq!((e.host(), e.is_https()), ("example.com:8443", true));
        assert_eq!(e.to_string(), "https://example.com:8443");
        // The default port is not sent in Host, so it is not signed either.
        assert_eq!(Endpoint::parse("https://h:443").unwrap().host(), "h");
        assert_eq!(Endpoint::parse("http://[::1]:9").unwrap().host(), "[::1]:9");
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "ftp://h",
            "https://h/api",
            "http://u:p@h",
            "http://h/?q=1",
            "http://",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::Endpoint(_))),
                "{bad}"
            );
        }
    }
}
