//! Name resolution that checks what it returns: reqwest connects only to the addresses the
//! resolver hands it, so filtering them here checks the very address connected to, from the
//! one lookup that is made (a name that answers differently the second time gets no second
//! time: DNS rebinding). Hosts written as IP addresses never reach a resolver; [`literal`]
//! finds them so the caller can check them.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::{AddressPolicy, Refused};

/// Where names are looked up: the system's resolver, or a table in tests.
pub trait Lookup: Send + Sync {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system's resolver (getaddrinfo, through tokio's blocking pool).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// The IP address `host` is written as, if it is one (an IPv6 literal with or without its
/// brackets): the same test hyper's connector makes before it skips the resolver.
pub fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Looks `host` up once and keeps the addresses `policy` allows; none left is a refusal.
pub async fn resolve_allowed(
    lookup: &dyn Lookup,
    policy: &AddressPolicy,
    host: &str,
) -> Result<Vec<IpAddr>, Refused> {
    let found = lookup.lookup(host).await.map_err(|e| Refused::Unresolved {
        host: host.to_string(),
        why: e.to_string(),
    })?;
    let allowed: Vec<IpAddr> = found
        .iter()
        .copied()
        .filter(|ip| policy.refusal(*ip).is_none())
        .collect();
    if allowed.is_empty() {
        // The first refused address says why (a name that resolves to nothing says so too).
        return Err(found.iter().find_map(|ip| policy.refusal(*ip)).unwrap_or(
            Refused::NoAddress {
                host: host.to_string(),
            },
        ));
    }
    Ok(allowed)
}

/// reqwest's resolver: [`resolve_allowed`] with the client's policy.
pub(crate) struct FilteringResolver {
    pub(crate) lookup: Arc<dyn Lookup>,
    pub(crate) policy: Arc<AddressPolicy>,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (lookup, policy) = (self.lookup.clone(), self.policy.clone());
        Box::pin(async move {
            let allowed = resolve_allowed(&*lookup, &policy, name.as_str()).await?;
            // Port 0: reqwest puts the URL's port in.
            let addrs: Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// A resolver of fixed answers; each name may answer differently on each lookup (the last
    /// answer repeats), and every lookup is counted.
    #[derive(Default)]
    pub(crate) struct Table {
        pub(crate) answers: Mutex<HashMap<String, Vec<Vec<IpAddr>>>>,
        pub(crate) lookups: Mutex<Vec<String>>,
    }

    impl Table {
        pub(crate) fn with(entries: &[(&str, &[&[&str]])]) -> Arc<Table> {
            let table = Table::default();
            for (host, answers) in entries {
                let answers = answers
                    .iter()
                    .map(|ips| ips.iter().map(|ip| ip.parse().unwrap()).collect())
                    .collect();
                table
                    .answers
                    .lock()
                    .unwrap()
                    .insert(host.to_string(), answers);
            }
            Arc::new(table)
        }

        pub(crate) fn lookups(&self, host: &str) -> usize {
            self.lookups
                .lock()
                .unwrap()
                .iter()
                .filter(|h| *h == host)
                .count()
        }
    }

    impl Lookup for Table {
        fn lookup(
            &self,
            host: &str,
        ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
            self.lookups.lock().unwrap().push(host.to_string());
            let mut answers = self.answers.lock().unwrap();
            let found = match answers.get_mut(host) {
                Some(list) if list.len() > 1 => Ok(list.remove(0)),
                Some(list) => Ok(list[0].clone()),
                None => Err(io::Error::new(io::ErrorKind::NotFound, "no such name")),
            };
            Box::pin(async move { found })
        }
    }

    #[test]
    fn literals_are_found_with_or_without_brackets() {
        assert_eq!(literal("127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(
            literal("::ffff:7f00:1"),
            Some("::ffff:7f00:1".parse().unwrap())
        );
        assert_eq!(literal("example.com"), None);
        assert_eq!(literal("127.0.0.1."), None);
    }

    #[tokio::test]
    async fn only_allowed_addresses_come_back() {
        let table = Table::with(&[
            ("mixed.test", &[&["127.0.0.1", "8.8.8.8", "::1"]]),
            ("inside.test", &[&["10.0.0.1", "169.254.169.254"]]),
            ("empty.test", &[&[]]),
        ]);
        let public = AddressPolicy::public_only();
        assert_eq!(
            resolve_allowed(&*table, &public, "mixed.test")
                .await
                .unwrap(),
            vec!["8.8.8.8".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            resolve_allowed(&*table, &public, "inside.test").await,
            Err(Refused::Address {
                ip: "10.0.0.1".parse().unwrap(),
                block: "private"
            })
        );
        assert_eq!(
            resolve_allowed(&*table, &public, "empty.test").await,
            Err(Refused::NoAddress {
                host: "empty.test".into()
            })
        );
        assert!(matches!(
            resolve_allowed(&*table, &public, "nowhere.test").await,
            Err(Refused::Unresolved { .. })
        ));
        assert_eq!(
            resolve_allowed(&*table, &AddressPolicy::anything(), "inside.test")
                .await
                .unwrap()
                .len(),
            2
        );
    }
}
