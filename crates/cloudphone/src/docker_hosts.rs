//! The `[[docker.hosts]]` of the backends file: the Docker engines of a farm, how each is
//! reached (a local socket, or `tcp://` with TLS client certificates: the Docker API is root
//! on its host, so plain TCP is refused) and what its phones may use of it. A file without
//! them keeps its `[docker] socket` as the one host `default`, unlimited.
//!
//! ```toml
//! [docker]
//! network = "host"                     # every host's, unless it says otherwise
//! placement = "spread"                 # or "binpack"
//!
//! [[docker.hosts]]
//! name = "rack1-a"
//! socket = "unix:///var/run/docker.sock"
//! adb_ports = "20000-20199"
//! max_phones = 40
//!
//! [[docker.hosts]]
//! name = "rack1-b"
//! url = "tcp://10.0.0.12:2376"
//! tls_ca = "/etc/cloudphone/rack1-b/ca.pem"
//! tls_cert = "/etc/cloudphone/rack1-b/cert.pem"
//! tls_key = "/etc/cloudphone/rack1-b/key.pem"
//! adb_host = "10.0.0.12"               # default: the url's host (127.0.0.1 for a socket)
//! adb_ports = "20000-20199"
//! cpus = 64                            # the phones' specs take CPU and memory (DescribeSpec)
//! memory_gib = 256
//! # images = ["imgc-redroid12"]        # default: every [[docker.images]]
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use cloudphone_backends::{DEFAULT_HOST, Engine, HostSpec, Network};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    pub name: String,
    pub socket: Option<String>,
    pub url: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub adb_host: Option<String>,
    pub adb_ports: Option<String>,
    pub network: Option<String>,
    pub max_phones: Option<u64>,
    pub cpus: Option<u64>,
    pub memory_gib: Option<u64>,
    #[serde(default)]
    pub images: Vec<String>,
}

/// A name as hosts are recorded: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn valid_host_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `FIRST-LAST`, with `what` naming the field in the error.
pub fn port_range(range: &str, what: &str) -> anyhow::Result<(u16, u16)> {
    let parsed = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((a, b)) if a <= b && a > 0 => Ok((a, b)),
        _ => bail!("{what} must be FIRST-LAST, as in 20000-20999"),
    }
}

/// A network's name and ports as the file spells them.
pub fn network(name: &str, adb_ports: Option<&str>, at: &str) -> anyhow::Result<Network> {
    Ok(match (name, adb_ports) {
        ("bridge", None) => Network::Bridge,
        ("none", None) => Network::None,
        ("host", Some(range)) => Network::Host {
            adb_ports: port_range(range, &format!("{at}.adb_ports"))?,
        },
        ("host", None) => bail!("{at}.network = \"host\" needs {at}.adb_ports"),
        ("bridge" | "none", Some(_)) => {
            bail!("{at}.adb_ports is only for {at}.network = \"host\"")
        }
        (other, _) => bail!("{at}.network is bridge, host or none, not {other:?}"),
    })
}

/// The hosts of `[[docker.hosts]]`, checked; `network` is `[docker]`'s, which each host may
/// override; `images` the ids of `[[docker.images]]`.
pub fn hosts(
    sections: &[HostSection],
    default_network: &str,
    images: &[String],
) -> anyhow::Result<Vec<HostSpec>> {
    let mut out: Vec<HostSpec> = Vec::new();
    for h in sections {
        let at = format!("[[docker.hosts]] {:?}", h.name);
        if !valid_host_name(&h.name) {
            bail!(
                "{at}: a host's name is 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit"
            );
        }
        if out.iter().any(|o| o.name == h.name) {
            bail!("{at} is configured twice");
        }
        let spec = host(h, default_network, images).with_context(|| at.clone())?;
        for o in &out {
            if let (Network::Host { adb_ports: a }, Network::Host { adb_ports: b }) =
                (&o.network, &spec.network)
                && o.adb_host == spec.adb_host
                && a.0 <= b.1
                && b.0 <= a.1
            {
                bail!(
                    "{at}: its adb_ports overlap those of {:?}, on the same adb_host {}",
                    o.name,
                    o.adb_host
                );
            }
        }
        out.push(spec);
    }
    Ok(out)
}

fn host(h: &HostSection, default_network: &str, images: &[String]) -> anyhow::Result<HostSpec> {
    let (engine, url_host) = match (&h.socket, &h.url) {
        (Some(socket), None) => {
            if h.tls_ca.is_some() || h.tls_cert.is_some() || h.tls_key.is_some() {
                bail!("tls_ca, tls_cert and tls_key are for a tcp:// url, not a socket");
            }
            let path = socket.strip_prefix("unix://").unwrap_or(socket);
            if !path.starts_with('/') {
                bail!("socket is an absolute path (unix:///var/run/docker.sock), not {socket:?}");
            }
            (Engine::Unix(socket.clone()), None)
        }
        (None, Some(url)) => {
            let Some(rest) = url.strip_prefix("tcp://") else {
                bail!(
                    "url is tcp://HOST:PORT with TLS client certificates, not {url:?} (the Docker API is root on its host)"
                );
            };
            let (Some(ca), Some(cert), Some(key)) = (&h.tls_ca, &h.tls_cert, &h.tls_key) else {
                bail!(
                    "a tcp:// engine needs tls_ca, tls_cert and tls_key: plain TCP is never used (the Docker API is root on its host)"
                );
            };
            for (what, path) in [("tls_ca", ca), ("tls_cert", cert), ("tls_key", key)] {
                std::fs::metadata(path)
                    .with_context(|| format!("{what} {} cannot be read", path.display()))?;
            }
            let host = rest
                .rsplit_once(':')
                .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                .with_context(|| format!("url {url:?} is tcp://HOST:PORT"))?;
            (
                Engine::Tls {
                    url: url.clone(),
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                },
                Some(host),
            )
        }
        (Some(_), Some(_)) => bail!("a host has a socket or a url, not both"),
        (None, None) => bail!("a host needs a socket (unix://...) or a url (tcp://...)"),
    };
    let network = network(
        h.network.as_deref().unwrap_or(default_network),
        h.adb_ports.as_deref(),
        "host",
    )?;
    match (h.max_phones, h.cpus, h.memory_gib) {
        (None, None, None) => {
            bail!("a host needs its capacity: max_phones, or cpus and memory_gib (or all three)")
        }
        (_, Some(_), None) | (_, None, Some(_)) => {
            bail!("cpus and memory_gib go together")
        }
        (Some(0), ..) | (_, Some(0), _) | (.., Some(0)) => {
            bail!("a capacity of 0 leaves no room: cordon the host instead")
        }
        _ => {}
    }
    for i in &h.images {
        if !images.contains(i) {
            bail!("images names {i:?}, which no [[docker.images]] is");
        }
    }
    Ok(HostSpec {
        name: h.name.clone(),
        engine,
        adb_host: h
            .adb_host
            .clone()
            .or(url_host)
            .unwrap_or_else(|| "127.0.0.1".into()),
        network,
        images: h.images.clone(),
        max_phones: h.max_phones,
        cpu_milli: h.cpus.map(|c| c * 1000),
        memory_mib: h.memory_gib.map(|m| m * 1024),
    })
}

/// The one host of a file without `[[docker.hosts]]`.
pub fn legacy(socket: Option<String>, network: Network) -> Vec<HostSpec> {
    let spec = HostSpec::legacy(socket, network);
    debug_assert_eq!(spec.name, DEFAULT_HOST);
    vec![spec]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> HostSection {
        toml::from_str(&format!("name = \"h1\"\n{text}")).unwrap()
    }

    fn one(text: &str) -> anyhow::Result<HostSpec> {
        hosts(&[section(text)], "host", &["imgc-a".into()]).map(|mut v| v.remove(0))
    }

    #[test]
    fn a_socket_host_and_a_tls_host() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let h = one("socket = \"unix:///run/d.sock\"\nadb_ports = \"20000-20009\"\nmax_phones = 4")
            .unwrap();
        assert_eq!(h.engine, Engine::Unix("unix:///run/d.sock".into()));
        assert_eq!(h.adb_host, "127.0.0.1");
        assert_eq!(
            h.network,
            Network::Host {
                adb_ports: (20000, 20009)
            }
        );
        assert_eq!(
            (h.max_phones, h.cpu_milli, h.memory_mib),
            (Some(4), None, None)
        );
        let p = |f: &str| dir.path().join(f).display().to_string();
        let h = one(&format!(
            "url = \"tcp://10.1.2.3:2376\"\ntls_ca = {:?}\ntls_cert = {:?}\ntls_key = {:?}\n\
             network = \"bridge\"\ncpus = 8\nmemory_gib = 16\nimages = [\"imgc-a\"]",
            p("ca.pem"),
            p("cert.pem"),
            p("key.pem")
        ))
        .unwrap();
        assert!(matches!(h.engine, Engine::Tls { ref url, .. } if url == "tcp://10.1.2.3:2376"));
        assert_eq!(h.adb_host, "10.1.2.3", "the url's host by default");
        assert_eq!(h.network, Network::Bridge);
        assert_eq!((h.cpu_milli, h.memory_mib), (Some(8000), Some(16384)));
        assert!(h.runs("imgc-a") && !h.runs("imgc-b"));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let missing = dir.path().join("none.pem");
        let ok = "adb_ports = \"1-9\"\nmax_phones = 1\n";
        let cases = [
            (ok.to_string(), "a socket (unix://...) or a url"),
            (
                format!("socket = \"/s\"\nurl = \"tcp://a:1\"\n{ok}"),
                "not both",
            ),
            (
                format!("url = \"tcp://a:1\"\n{ok}"),
                "tls_ca, tls_cert and tls_key",
            ),
            (format!("url = \"http://a:1\"\n{ok}"), "root on its host"),
            (
                format!(
                    "url = \"tcp://a:1\"\ntls_ca = {ca:?}\ntls_cert = {ca:?}\ntls_key = {missing:?}\n{ok}"
                ),
                "tls_key",
            ),
            (format!("socket = \"relative\"\n{ok}"), "absolute path"),
            ("socket = \"/s\"\nadb_ports = \"1-9\"\n".into(), "capacity"),
            (
                "socket = \"/s\"\nadb_ports = \"1-9\"\ncpus = 4\n".into(),
                "go together",
            ),
            (
                "socket = \"/s\"\nadb_ports = \"1-9\"\nmax_phones = 0\n".into(),
                "cordon",
            ),
            (
                "socket = \"/s\"\nmax_phones = 1\n".into(),
                "needs host.adb_ports",
            ),
            (
                format!("socket = \"/s\"\n{ok}images = [\"imgc-z\"]\n"),
                "no [[docker.images]]",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", one(&text).unwrap_err());
            assert!(err.contains(expected), "{text}: {err}");
        }
        let mut bad = section("socket = \"/s\"\nmax_phones = 1\nadb_ports = \"1-9\"");
        bad.name = "Rack_1".into();
        let err = format!("{:#}", hosts(&[bad], "host", &[]).unwrap_err());
        assert!(err.contains("a host's name"), "{err}");
    }

    #[test]
    fn names_are_unique_and_ranges_on_one_address_do_not_overlap() {
        let a = section("socket = \"/a\"\nadb_ports = \"100-199\"\nmax_phones = 1");
        let mut b = section("socket = \"/b\"\nadb_ports = \"150-249\"\nmax_phones = 1");
        let err = format!(
            "{:#}",
            hosts(&[a.clone(), a.clone()], "host", &[]).unwrap_err()
        );
        assert!(err.contains("twice"), "{err}");
        b.name = "h2".into();
        let err = format!(
            "{:#}",
            hosts(&[a.clone(), b.clone()], "host", &[]).unwrap_err()
        );
        assert!(err.contains("overlap"), "{err}");
        // The same ports on two machines are fine.
        b.adb_host = Some("10.0.0.2".into());
        assert_eq!(hosts(&[a, b], "host", &[]).unwrap().len(), 2);
    }
}
