//! The controls any task-producing call may carry beyond the vendor's parameters (issue 10):
//! `ClientToken` (idempotency), `DryRun`, `MaxConcurrency` and `MaxErrors`. Parsed once per
//! call, before its action, so that every action honours them alike.

use cloudphone_core::{ApiError, Share};
use sha2::{Digest, Sha256};

use crate::params::Params;

/// The longest `ClientToken` accepted.
pub const MAX_CLIENT_TOKEN: usize = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    pub client_token: Option<String>,
    /// Check and report, create nothing.
    pub dry_run: bool,
    pub max_concurrency: Option<Share>,
    pub max_errors: Option<Share>,
}

impl Controls {
    pub fn parse(p: &Params) -> Result<Controls, ApiError> {
        let client_token = p.string("ClientToken");
        if client_token
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_CLIENT_TOKEN)
        {
            return Err(ApiError::invalid("ClientToken", "At most 100 characters."));
        }
        let share = |name: &str, min: i64| -> Result<Option<Share>, ApiError> {
            match p.get(name) {
                None => Ok(None),
                Some(v) => Share::parse(v, min).map(Some).ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        format!(
                            "'{v}' is neither a whole number from {min} nor a percentage from 0% to 100%."
                        ),
                    )
                }),
            }
        };
        Ok(Controls {
            client_token,
            dry_run: p.bool("DryRun")?.unwrap_or(false),
            max_concurrency: share("MaxConcurrency", 1)?,
            max_errors: share("MaxErrors", 0)?,
        })
    }
}

/// What a repeated call must match to be answered from its ClientToken: the action and every
/// parameter but the token itself (protocol and signature fields are not among them), each
/// length-prefixed so that no two different calls hash alike.
pub fn fingerprint(action: &str, p: &Params) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    put(action);
    for name in p.keys().filter(|k| *k != "ClientToken") {
        put(name);
        put(p.get(name).unwrap_or_default());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn parses_the_controls() {
        let c = Controls::parse(&params(&[
            ("ClientToken", "abc"),
            ("DryRun", "true"),
            ("MaxConcurrency", "10%"),
            ("MaxErrors", "0"),
        ]))
        .unwrap();
        assert_eq!(c.client_token.as_deref(), Some("abc"));
        assert!(c.dry_run);
        assert_eq!(c.max_concurrency, Some(Share::Percent(10)));
        assert_eq!(c.max_errors, Some(Share::Count(0)));
        assert_eq!(Controls::parse(&params(&[])).unwrap(), Controls::default());
        for (name, bad) in [
            ("MaxConcurrency", "0"),
            ("MaxConcurrency", "x"),
            ("MaxErrors", "101%"),
            ("DryRun", "maybe"),
        ] {
            let e = Controls::parse(&params(&[(name, bad)])).unwrap_err();
            assert_eq!(e.code(), format!("InvalidParameter.{name}"), "{name}={bad}");
        }
        let long = "t".repeat(101);
        let e = Controls::parse(&params(&[("ClientToken", &long)])).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter.ClientToken");
    }

    #[test]
    fn the_fingerprint_ignores_only_the_token() {
        let a = params(&[("A", "1"), ("B", "2"), ("ClientToken", "x")]);
        let same = params(&[("B", "2"), ("A", "1"), ("ClientToken", "y")]);
        let other = params(&[("A", "1"), ("B", "3"), ("ClientToken", "x")]);
        let shifted = params(&[("A", "12"), ("ClientToken", "x")]);
        let joined = params(&[("A1", "2"), ("ClientToken", "x")]);
        assert_eq!(fingerprint("Run", &a), fingerprint("Run", &same));
        assert_ne!(fingerprint("Run", &a), fingerprint("Run", &other));
        assert_ne!(fingerprint("Run", &a), fingerprint("Stop", &a));
        assert_ne!(fingerprint("Run", &shifted), fingerprint("Run", &joined));
    }
}
