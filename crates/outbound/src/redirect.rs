//! Redirects: each hop is checked as the first URL was, before it is followed. Its scheme must
//! be http(s); a host written as an address is checked here (no resolver sees it); a name is
//! checked by the client's resolver when the hop connects. At most a few hops.

use std::sync::Arc;

use reqwest::Url;

use crate::policy::{AddressPolicy, Refused};
use crate::resolver::literal;

/// Whether `url` may be connected to before any lookup: http(s) with a host, and a host written
/// as an address only if `policy` allows that address. A name passes here and is checked by the
/// resolver.
pub fn check_url(policy: &AddressPolicy, url: &Url) -> Result<(), Refused> {
    let host = match url.host_str() {
        Some(h) if matches!(url.scheme(), "http" | "https") => h,
        _ => return Err(Refused::NotHttp),
    };
    match literal(host).and_then(|ip| policy.refusal(ip)) {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// The verdict on following a redirect to `next` after `hops` redirects (this one included).
pub fn hop(policy: &AddressPolicy, next: &Url, hops: usize, max: usize) -> Result<(), Refused> {
    if hops > max {
        return Err(Refused::TooManyRedirects(max));
    }
    check_url(policy, next)
}

/// reqwest's redirect policy: [`hop`] on every redirect; with `max` 0, none is followed (the
/// redirect is the answer).
pub(crate) fn policy(policy: Arc<AddressPolicy>, max: usize) -> reqwest::redirect::Policy {
    if max == 0 {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(move |attempt| {
        // `previous` holds the URLs already requested: the first one and each hop's.
        let hops = attempt.previous().len();
        match hop(&policy, attempt.url(), hops, max) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_hop_to_a_refused_address_is_refused_in_every_spelling() {
        let p = AddressPolicy::public_only();
        for next in [
            "http://127.0.0.1/x",
            "http://127.1/x",
            "http://2130706433/x",
            "http://0x7f000001/x",
            "http://0/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::127.0.0.1]/x",
            "http://[64:ff9b::a9fe:a9fe]/latest",
            "http://[2002:a9fe:a9fe::]/latest",
            "https://169.254.169.254/latest/meta-data",
            "http://198.18.0.1/",
            "http://240.0.0.1/",
            "http://[fec0::1]/",
        ] {
            assert!(hop(&p, &url(next), 1, 5).is_err(), "{next}");
        }
    }

    #[test]
    fn a_hop_to_a_public_address_or_a_name_passes_here() {
        let p = AddressPolicy::public_only();
        for next in [
            "http://8.8.8.8/x",
            "https://[2606:4700::1111]/x",
            // Names are checked by the resolver when the hop connects.
            "https://files.example/app.apk",
        ] {
            assert_eq!(hop(&p, &url(next), 1, 5), Ok(()), "{next}");
        }
    }

    #[test]
    fn hops_are_limited_and_must_stay_http() {
        let p = AddressPolicy::anything();
        assert_eq!(hop(&p, &url("http://8.8.8.8/"), 5, 5), Ok(()));
        assert_eq!(
            hop(&p, &url("http://8.8.8.8/"), 6, 5),
            Err(Refused::TooManyRedirects(5))
        );
        for next in ["file:///etc/passwd", "ftp://8.8.8.8/x", "data:text/plain,x"] {
            assert_eq!(hop(&p, &url(next), 1, 5), Err(Refused::NotHttp), "{next}");
        }
    }

    #[test]
    fn an_allowed_network_is_followed_into_and_nothing_else() {
        let p = AddressPolicy {
            allow_private: false,
            allowed: vec!["127.0.0.2/32".parse().unwrap()],
        };
        assert_eq!(hop(&p, &url("http://127.0.0.2:8080/a"), 1, 5), Ok(()));
        assert!(hop(&p, &url("http://127.0.0.1:8080/a"), 1, 5).is_err());
    }
}
