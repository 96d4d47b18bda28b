//! The operator's rule for where the server may connect on a tenant's behalf: public addresses
//! only ([`crate::ranges`]), unless private ones are allowed altogether or a network is allowed
//! by name; and [`Refused`], the reason one was not.

use std::net::IpAddr;

use crate::ranges::{Net, special_purpose, unmap};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Any address may be connected to (the operator's own network included).
    pub allow_private: bool,
    /// Networks that may be connected to although they are not public (an artifact server on
    /// the LAN, say); the rest stays refused.
    pub allowed: Vec<Net>,
}

impl AddressPolicy {
    /// Public addresses only.
    pub fn public_only() -> AddressPolicy {
        AddressPolicy::default()
    }

    /// Every address.
    pub fn anything() -> AddressPolicy {
        AddressPolicy {
            allow_private: true,
            allowed: Vec::new(),
        }
    }

    /// Why `ip` may not be connected to, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<Refused> {
        if self.allow_private || self.allowed.iter().any(|n| n.contains(ip)) {
            return None;
        }
        special_purpose(ip).map(|block| Refused::Address {
            ip: unmap(ip),
            block,
        })
    }
}

/// Why the server did not connect. Shown to operators (logs) and, for webhooks, to the tenant
/// that named the address; a download's tenant sees only that it could not be fetched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{ip} is not a public address ({block})")]
    Address { ip: IpAddr, block: &'static str },
    #[error("{host} resolves to no address that may be connected to")]
    NoAddress { host: String },
    #[error("{host} could not be resolved: {why}")]
    Unresolved { host: String, why: String },
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("not an http(s) URL with a host")]
    NotHttp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_only_refuses_special_addresses_and_names_their_block() {
        let p = AddressPolicy::public_only();
        assert_eq!(p.refusal("8.8.8.8".parse().unwrap()), None);
        assert_eq!(
            p.refusal("::ffff:169.254.169.254".parse().unwrap()),
            Some(Refused::Address {
                ip: "169.254.169.254".parse().unwrap(),
                block: "link-local (cloud metadata)"
            })
        );
        assert_eq!(
            p.refusal("127.0.0.1".parse().unwrap()).unwrap().to_string(),
            "127.0.0.1 is not a public address (loopback)"
        );
    }

    #[test]
    fn an_allowed_network_lets_in_only_itself() {
        let p = AddressPolicy {
            allow_private: false,
            allowed: vec!["127.0.0.2/32".parse().unwrap()],
        };
        assert_eq!(p.refusal("127.0.0.2".parse().unwrap()), None);
        assert_eq!(p.refusal("::ffff:127.0.0.2".parse().unwrap()), None);
        assert!(p.refusal("127.0.0.1".parse().unwrap()).is_some());
        assert!(p.refusal("10.0.0.1".parse().unwrap()).is_some());
        assert_eq!(p.refusal("8.8.8.8".parse().unwrap()), None);
    }

    #[test]
    fn allowing_private_allows_everything() {
        let p = AddressPolicy::anything();
        for ip in ["127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0"] {
            assert_eq!(p.refusal(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
