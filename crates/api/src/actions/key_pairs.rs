//! CreateKeyPair, ImportKeyPair, DescribeKeyPairs, ModifyKeyPairName and DeleteKeyPairs: an
//! account's ADB key pairs (issue 22). Only public halves are stored; CreateKeyPair's private
//! key (PKCS#8 PEM, what `adb` reads as `adbkey`) is in its answer and nowhere else. Times are
//! `YYYY-MM-DD HH:mm:ss` (UTC), as the vendor writes them for key pairs and ADB endpoints.

use cloudphone_adb::keys::{self, AdbPublicKey};
use cloudphone_core::resources::KeyPair;
use cloudphone_core::time::plain;
use cloudphone_core::{ApiError, ids};
use cloudphone_store::{KeyPairCreated, KeyPairFilter, KeyPairsDeleted, Page, Rename};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::common::{Paging, dedup, internal};
use crate::adb::RevocationReason;
use crate::params::Params;
use crate::state::Ctx;

/// Key generations running at once on a node; more calls wait their turn. A 2048-bit key takes
/// a good fraction of a CPU second, and one client's burst of CreateKeyPair must not take every
/// core from the rest of the node.
static GENERATIONS: Semaphore = Semaphore::const_new(2);

/// The vendor's rule for key pair names (CreateKeyPair's, applied to every name here): 2 to 128
/// characters; letters, CJK characters, digits, `:`, `_` and `-`; a letter or CJK character
/// first; not `http://` or `https://` first.
pub fn valid_key_pair_name(name: &str) -> bool {
    let is_cjk = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || is_cjk(c));
    first_ok
        && (2..=128).contains(&name.chars().count())
        && !name.starts_with("http://")
        && !name.starts_with("https://")
        && chars.all(|c| c.is_ascii_alphanumeric() || is_cjk(c) || ":_-".contains(c))
}

/// A key pair name parameter, checked against the rule.
fn name_param(p: &Params, param: &str) -> Result<String, ApiError> {
    let name = p.required(param)?;
    if !valid_key_pair_name(&name) {
        return Err(ApiError::invalid(
            param,
            "Use 2 to 128 characters: a letter or CJK character first, then letters, digits, \
             CJK, ':', '_' or '-'.",
        ));
    }
    Ok(name)
}

/// Refuses an account that has all the key pairs it may have, before a key is made for it
/// (the store checks again when it stores one: this only spares the generation).
async fn check_room(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let limit = ctx.state.limits.max_key_pairs;
    let filter = KeyPairFilter {
        account_id: ctx.account().to_string(),
        ..KeyPairFilter::default()
    };
    let page = Page {
        after: None,
        limit: 1,
    };
    let listed = ctx
        .state
        .store
        .list_key_pairs(&filter, &page)
        .await
        .map_err(internal)?;
    let used = u64::try_from(listed.total).unwrap_or(0);
    if used >= limit {
        return Err(ApiError::QuotaExceeded {
            what: "key pairs".into(),
            limit,
            used,
            asked: 1,
        });
    }
    Ok(())
}

/// Stores `key` for the caller under `name`; a name the account already has is refused, and
/// so is an account with all the key pairs it may have.
async fn store_key_pair(
    ctx: &Ctx<'_>,
    id: String,
    name: String,
    key: &AdbPublicKey,
) -> Result<KeyPair, ApiError> {
    let pair = KeyPair {
        id,
        account_id: ctx.account().to_string(),
        name,
        public_key: key.to_string(),
        fingerprint: key.fingerprint(),
        created_ms: ctx.now_ms,
    };
    let limit = ctx.state.limits.max_key_pairs;
    let created = ctx
        .state
        .store
        .create_key_pair(&pair, limit)
        .await
        .map_err(internal)?;
    match created {
        KeyPairCreated::Created => Ok(pair),
        KeyPairCreated::NameTaken => Err(ApiError::Duplicate {
            name: "KeyPairName".into(),
            value: pair.name,
        }),
        KeyPairCreated::Full { used } => Err(ApiError::QuotaExceeded {
            what: "key pairs".into(),
            limit,
            used,
            asked: 1,
        }),
    }
}

pub struct CreateKeyPair {
    name: String,
}

impl CreateKeyPair {
    pub fn parse(p: &Params) -> Result<CreateKeyPair, ApiError> {
        Ok(CreateKeyPair {
            name: name_param(p, "KeyPairName")?,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        check_room(ctx).await?;
        let id = ids::new_id(ids::KEY_PAIR);
        // adb writes `user@host` after the key; ours names the key pair, which stays true
        // through renames.
        let comment = format!("{id}@cloudphone");
        let generated = {
            let _turn = GENERATIONS
                .acquire()
                .await
                .map_err(|_| ApiError::Internal)?;
            tokio::task::spawn_blocking(move || keys::generate(&comment))
                .await
                .map_err(|_| ApiError::Internal)?
                .map_err(|e| {
                    tracing::error!(error = %e, "generating a key pair failed");
                    ApiError::Internal
                })?
        };
        let pair = store_key_pair(ctx, id, self.name, &generated.public).await?;
        Ok(json!({
            "Data": {
                "GmtCreated": plain(pair.created_ms),
                "KeyPairId": pair.id,
                "KeyPairName": pair.name,
                "PrivateKeyBody": generated.private_pem,
            }
        }))
    }
}

pub struct ImportKeyPair {
    name: String,
    key: AdbPublicKey,
}

impl ImportKeyPair {
    pub fn parse(p: &Params) -> Result<ImportKeyPair, ApiError> {
        let name = name_param(p, "KeyPairName")?;
        let body = p.required("PublicKeyBody")?;
        let key = AdbPublicKey::parse(&body).map_err(|e| {
            ApiError::invalid(
                "PublicKeyBody",
                format!("It must be the text of an adbkey.pub (as adb keygen writes it): {e}."),
            )
        })?;
        Ok(ImportKeyPair { name, key })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let id = ids::new_id(ids::KEY_PAIR);
        let pair = store_key_pair(ctx, id, self.name, &self.key).await?;
        Ok(json!({
            "Data": {
                "GmtCreated": plain(pair.created_ms),
                "KeyPairId": pair.id,
                "KeyPairName": pair.name,
            }
        }))
    }
}

pub struct DescribeKeyPairs {
    filter: KeyPairFilter,
    paging: Paging,
}

impl DescribeKeyPairs {
    pub fn parse(p: &Params) -> Result<DescribeKeyPairs, ApiError> {
        let mut ids = dedup(p.list("KeyPairIds", 100)?);
        ids.sort();
        Ok(DescribeKeyPairs {
            filter: KeyPairFilter {
                account_id: String::new(),
                ids,
                name: p.string("KeyPairName"),
            },
            paging: Paging::parse(p, 10)?,
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        let scope = format!("DescribeKeyPairs|{:?}", self.filter);
        let page = self.paging.page(ctx, &scope)?;
        let listing = ctx
            .state
            .store
            .list_key_pairs(&self.filter, &page)
            .await
            .map_err(internal)?;
        let data: Vec<Value> = listing
            .items
            .iter()
            .map(|k| {
                json!({
                    "GmtCreated": plain(k.created_ms),
                    "KeyPairId": k.id,
                    "KeyPairName": k.name,
                })
            })
            .collect();
        let mut body = json!({ "TotalCount": listing.total, "Data": data });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}

pub struct ModifyKeyPairName {
    id: String,
    name: String,
}

impl ModifyKeyPairName {
    pub fn parse(p: &Params) -> Result<ModifyKeyPairName, ApiError> {
        Ok(ModifyKeyPairName {
            id: p.required("KeyPairId")?,
            name: name_param(p, "NewKeyPairName")?,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let done = ctx
            .state
            .store
            .rename_key_pair(ctx.account(), &self.id, &self.name)
            .await
            .map_err(internal)?;
        match done {
            Rename::Renamed => Ok(json!({})),
            Rename::NotFound => Err(ApiError::not_found("KeyPairId", self.id)),
            Rename::NameTaken => Err(ApiError::Duplicate {
                name: "KeyPairName".into(),
                value: self.name,
            }),
        }
    }
}

pub struct DeleteKeyPairs {
    ids: Vec<String>,
}

impl DeleteKeyPairs {
    pub fn parse(p: &Params) -> Result<DeleteKeyPairs, ApiError> {
        let ids = dedup(p.list("KeyPairIds", 100)?);
        if ids.is_empty() {
            return Err(ApiError::missing("KeyPairIds"));
        }
        Ok(DeleteKeyPairs { ids })
    }

    /// All or none: an id that is not the caller's deletes nothing. A key pair still attached
    /// is detached from its phones first, which stay closed to unsigned clients.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let done = ctx
            .state
            .store
            .delete_key_pairs(ctx.account(), &self.ids)
            .await
            .map_err(internal)?;
        match done {
            KeyPairsDeleted::Missing(id) => Err(ApiError::not_found("KeyPairIds", id)),
            KeyPairsDeleted::Deleted { detached } => {
                ctx.state
                    .adb_revocations
                    .ring(detached, RevocationReason::KeyDeleted);
                Ok(json!({}))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_key_pair_name;

    #[test]
    fn names_follow_the_vendor_rule() {
        for good in ["ci", "farm-key_1", "手机:钥匙", "a1", &"k".repeat(128)] {
            assert!(valid_key_pair_name(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "1key",
            "_key",
            "key pair",
            "key.pub",
            "key/1",
            "http://x",
            "é-key",
            &"k".repeat(129),
        ] {
            assert!(!valid_key_pair_name(bad), "{bad}");
        }
    }
}
