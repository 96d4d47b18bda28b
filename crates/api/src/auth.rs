//! Who is calling: checks a request's signature (ACS3-HMAC-SHA256 or the legacy HMAC-SHA1),
//! its date window and its nonce, and yields the caller's access key.
//!
//! Everything but the two store calls (key lookup, nonce) is synchronous and pure, so it is
//! tested with the contract's vectors. Keys seen are kept in a [`KeyCache`]; the nonce write
//! checks each copy against the store, so the cache saves a read per call and changes nothing
//! else. The order of checks is deliberate: shape first, then
//! the key, the signature, the clock, and only then the nonce, so that nobody without the
//! secret can use up another client's nonces.
//!
//! A key id that is unknown (never made, deleted, disabled, or of a disabled account) answers
//! exactly as a bad signature does (`SignatureDoesNotMatch`, one message, 403), after the same
//! work: a request that does not prove a key's secret learns nothing about the key.

use cloudphone_core::error::ApiError;
use cloudphone_core::resources::AccessKey;
use cloudphone_core::time::parse_iso;
use cloudphone_store::{Nonce, Store};

use crate::request::RawRequest;
use crate::signature::{
    canonical_request_v3_at, parse_acs3_authorization, sha256_hex, string_to_sign_v1,
    string_to_sign_v3, verify_v1, verify_v3,
};

/// How far `x-acs-date` / `Timestamp` may be from the server's clock, either way.
pub const MAX_CLOCK_SKEW_MS: i64 = 15 * 60 * 1000;
/// Nonces are kept a little past the window so that clock differences between nodes sharing
/// a store cannot open a replay gap.
const NONCE_MARGIN_MS: i64 = 60 * 1000;
/// The SDKs send 32 hex characters; the bound keeps junk out of the nonce table.
const MAX_NONCE_LEN: usize = 128;

/// Headers an ACS3 request must sign: without them routing, replay protection or the body
/// would not be covered by the signature.
pub const REQUIRED_SIGNED_HEADERS: &[&str] = &[
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

/// What a request signs besides its method, query and headers: the path, and the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The canonical path: `/` for the RPC API; for the object routes the real path, each
    /// segment percent-encoded ([`crate::signature::pct`]).
    pub path: &'a str,
    /// The body is streamed after authentication (an upload): the payload line is the client's
    /// `x-acs-content-sha256`, and the caller must check the body against it as it arrives.
    /// Otherwise the payload line is the hash of `RawRequest::body`.
    pub streamed_body: bool,
}

/// The RPC API: path `/`, body in hand. The legacy scheme is accepted only here.
pub const RPC: Target<'static> = Target {
    path: "/",
    streamed_body: false,
};

/// What a well-formed signed request claims, before any key is looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    pub key_id: String,
    pub nonce: String,
    pub date_ms: i64,
    pub proof: Proof,
}

/// The string the client signed (as the server rebuilds it) and the signature it sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    Acs3 {
        string_to_sign: String,
        signature: String,
        /// Whether `x-acs-content-sha256` is the hash of the body received.
        body_hash_matches: bool,
    },
    Legacy {
        string_to_sign: String,
        signature: String,
    },
}

impl SignedRequest {
    /// Checks the signature with the key's secret, in constant time.
    pub fn verify(&self, secret: &str) -> Result<(), ApiError> {
        let (ok, string_to_sign) = match &self.proof {
            Proof::Acs3 {
                string_to_sign,
                signature,
                body_hash_matches,
            } => (
                *body_hash_matches && verify_v3(secret, string_to_sign, signature),
                string_to_sign,
            ),
            Proof::Legacy {
                string_to_sign,
                signature,
            } => (verify_v1(secret, string_to_sign, signature), string_to_sign),
        };
        if ok {
            Ok(())
        } else {
            // The string to sign holds nothing secret and is what a client author needs.
            tracing::debug!(key_id = %self.key_id, %string_to_sign, "signature does not match");
            Err(ApiError::SignatureDoesNotMatch)
        }
    }

    /// The signature and then the date window.
    pub fn check(&self, secret: &str, now_ms: i64) -> Result<(), ApiError> {
        self.verify(secret)?;
        check_time(self.date_ms, now_ms)
    }

    /// Until when the nonce must be remembered: as long as the date is acceptable, plus margin.
    pub fn nonce_expires_ms(&self) -> i64 {
        self.date_ms + MAX_CLOCK_SKEW_MS + NONCE_MARGIN_MS
    }
}

/// Whether the request's date is within [`MAX_CLOCK_SKEW_MS`] of `now_ms`.
pub fn check_time(date_ms: i64, now_ms: i64) -> Result<(), ApiError> {
    if (date_ms - now_ms).abs() <= MAX_CLOCK_SKEW_MS {
        Ok(())
    } else {
        Err(ApiError::TimestampExpired)
    }
}

/// Recognises the scheme and extracts what the request claims: an `Authorization: ACS3-...`
/// header is ACS3, a `Signature` parameter is the legacy scheme, anything else is unsigned.
pub fn parse_signed(req: &RawRequest) -> Result<SignedRequest, ApiError> {
    parse_signed_for(req, RPC)
}

/// [`parse_signed`] for a request to `target`; only ACS3 outside the RPC API.
pub fn parse_signed_for(req: &RawRequest, target: Target) -> Result<SignedRequest, ApiError> {
    if let Some(authorization) = req.header("authorization")
        && authorization.trim_start().starts_with("ACS3-")
    {
        return parse_acs3(req, authorization, target);
    }
    if target == RPC && all_params(req).any(|(k, _)| k == "Signature") {
        return parse_legacy(req);
    }
    Err(ApiError::IncompleteSignature(
        "the request is not signed: send an ACS3-HMAC-SHA256 Authorization header or a \
         Signature parameter"
            .into(),
    ))
}

fn parse_acs3(
    req: &RawRequest,
    authorization: &str,
    target: Target,
) -> Result<SignedRequest, ApiError> {
    let incomplete = ApiError::IncompleteSignature;
    let auth = parse_acs3_authorization(authorization)?;
    for required in REQUIRED_SIGNED_HEADERS {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(incomplete(format!("SignedHeaders must include {required}")));
        }
    }
    for name in &auth.signed_headers {
        // A header sent twice could be read one way by us and another by a proxy.
        match req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
        {
            0 => return Err(incomplete(format!("the signed header {name} is missing"))),
            1 => {}
            _ => {
                return Err(incomplete(format!(
                    "the signed header {name} is sent twice"
                )));
            }
        }
    }
    let signed_header = |name: &str| req.header(name).map_or("", str::trim);
    let date = signed_header("x-acs-date");
    let date_ms = parse_iso(date)
        .ok_or_else(|| ApiError::invalid("x-acs-date", "must be YYYY-MM-DDTHH:MM:SSZ"))?;
    let nonce = check_nonce(
        "x-acs-signature-nonce",
        signed_header("x-acs-signature-nonce"),
    )?;

    // The payload line uses the hash of what arrived, so the signature binds the real body
    // even if the header were ignored. A streamed body has not arrived yet: the line is the
    // claimed hash, which the caller holds the body to.
    let claimed = signed_header("x-acs-content-sha256");
    let (body_hash, body_hash_matches) = if target.streamed_body {
        if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid(
                "x-acs-content-sha256",
                "must be the hex SHA-256 of the body",
            ));
        }
        (claimed.to_string(), true)
    } else {
        let body_hash = sha256_hex(&req.body);
        let matches = claimed.eq_ignore_ascii_case(&body_hash);
        (body_hash, matches)
    };
    let names: Vec<&str> = auth.signed_headers.iter().map(String::as_str).collect();
    let canonical = canonical_request_v3_at(
        &req.method,
        target.path,
        &req.query,
        &req.headers,
        &names,
        &body_hash,
    );
    Ok(SignedRequest {
        key_id: auth.access_key_id,
        nonce,
        date_ms,
        proof: Proof::Acs3 {
            string_to_sign: string_to_sign_v3(&canonical),
            signature: auth.signature,
            body_hash_matches,
        },
    })
}

fn parse_legacy(req: &RawRequest) -> Result<SignedRequest, ApiError> {
    let signature = legacy_param(req, "Signature")?
        .ok_or_else(|| ApiError::IncompleteSignature("the Signature parameter is empty".into()))?;
    let method = legacy_param(req, "SignatureMethod")?
        .ok_or_else(|| ApiError::missing("SignatureMethod"))?;
    if method != "HMAC-SHA1" {
        return Err(ApiError::UnsupportedSignatureMethod(method.to_string()));
    }
    let version = legacy_param(req, "SignatureVersion")?
        .ok_or_else(|| ApiError::missing("SignatureVersion"))?;
    if version != "1.0" {
        return Err(ApiError::invalid("SignatureVersion", "must be 1.0"));
    }
    let key_id =
        legacy_param(req, "AccessKeyId")?.ok_or_else(|| ApiError::missing("AccessKeyId"))?;
    let timestamp =
        legacy_param(req, "Timestamp")?.ok_or_else(|| ApiError::missing("Timestamp"))?;
    let date_ms = parse_iso(timestamp)
        .ok_or_else(|| ApiError::invalid("Timestamp", "must be YYYY-MM-DDTHH:MM:SSZ"))?;
    let nonce =
        legacy_param(req, "SignatureNonce")?.ok_or_else(|| ApiError::missing("SignatureNonce"))?;
    let nonce = check_nonce("SignatureNonce", nonce)?;

    // Empty values stay in: the classic SDK signs its empty `SignatureType=`.
    let signed: Vec<(&str, &str)> = all_params(req).filter(|(k, _)| *k != "Signature").collect();
    Ok(SignedRequest {
        key_id: key_id.to_string(),
        nonce,
        date_ms,
        proof: Proof::Legacy {
            string_to_sign: string_to_sign_v1(&req.method, &signed),
            signature: signature.to_string(),
        },
    })
}

fn all_params(req: &RawRequest) -> impl Iterator<Item = (&str, &str)> {
    req.query
        .iter()
        .chain(&req.body_form)
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// A legacy protocol parameter from the query or the body; empty counts as absent, and two
/// different values are refused, as for any parameter.
fn legacy_param<'r>(req: &'r RawRequest, name: &str) -> Result<Option<&'r str>, ApiError> {
    let mut found: Option<&str> = None;
    for (_, value) in all_params(req).filter(|(k, _)| *k == name) {
        match found {
            Some(previous) if previous != value => {
                return Err(ApiError::invalid(
                    name,
                    "is given twice with different values",
                ));
            }
            _ => found = Some(value),
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

fn check_nonce(name: &str, nonce: &str) -> Result<String, ApiError> {
    if nonce.is_empty() {
        return Err(ApiError::missing(name));
    }
    if nonce.len() > MAX_NONCE_LEN {
        return Err(ApiError::invalid(
            name,
            format!("must be at most {MAX_NONCE_LEN} characters"),
        ));
    }
    Ok(nonce.to_string())
}

/// The two store operations authentication needs; a seam so the sequence is testable without
/// a database.
trait KeyStore {
    async fn access_key(&self, key_id: &str) -> Result<Option<AccessKey>, ApiError>;
    async fn remember_nonce(
        &self,
        key: &AccessKey,
        nonce: &str,
        expires_ms: i64,
    ) -> Result<Nonce, ApiError>;
}

struct StoreKeys<'a>(&'a dyn Store);

impl KeyStore for StoreKeys<'_> {
    async fn access_key(&self, key_id: &str) -> Result<Option<AccessKey>, ApiError> {
        self.0
            .access_key(key_id)
            .await
            .map_err(crate::store_error::internal)
    }

    async fn remember_nonce(
        &self,
        key: &AccessKey,
        nonce: &str,
        expires_ms: i64,
    ) -> Result<Nonce, ApiError> {
        self.0
            .remember_nonce(key, nonce, expires_ms)
            .await
            .map_err(crate::store_error::internal)
    }
}

/// The keys this node has seen, so that a call's signature is checked without first reading
/// its key from the store. A copy is never trusted on its own: the nonce write checks that the
/// key is still stored as copied ([`Store::remember_nonce`]), so a key deleted or changed on
/// any node is refused at its next call, exactly as without the copy.
///
/// It also remembers the nonces this node recorded or refused last ([`seen_recently`]), so that
/// a replay of a read-only call is refused before its read is run alongside the nonce write.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: std::sync::Mutex<std::collections::HashMap<String, AccessKey>>,
    recent: std::sync::Mutex<RecentNonces>,
}

/// What an unknown key's signature is checked against, only to spend the same time as for a
/// known key: the outcome is ignored.
const UNKNOWN_KEY_SECRET: &str = "no key has this secret; the outcome is ignored";

/// Keys kept at most; past that the copies are dropped and read again as calls come.
const KEY_CACHE_MAX: usize = 10_000;
/// Nonces remembered at most, the oldest forgotten first.
const RECENT_NONCES_MAX: usize = 65_536;

/// The nonces as keyed hashes (the hasher's keys are random per process, so nobody can make two
/// nonces collide on purpose; a chance collision only makes a call wait for its nonce write).
#[derive(Debug, Default)]
struct RecentNonces {
    hasher: std::collections::hash_map::RandomState,
    set: std::collections::HashSet<u64>,
    order: std::collections::VecDeque<u64>,
}

impl RecentNonces {
    fn hash(&self, key_id: &str, nonce: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((key_id, nonce))
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl KeyCache {
    fn get(&self, key_id: &str) -> Option<AccessKey> {
        lock(&self.keys).get(key_id).cloned()
    }

    fn keep(&self, key: &AccessKey) {
        let mut map = lock(&self.keys);
        if map.len() >= KEY_CACHE_MAX && !map.contains_key(&key.key_id) {
            map.clear();
        }
        map.insert(key.key_id.clone(), key.clone());
    }

    fn forget(&self, key_id: &str) {
        lock(&self.keys).remove(key_id);
    }

    fn note_nonce(&self, key_id: &str, nonce: &str) {
        let mut recent = lock(&self.recent);
        let h = recent.hash(key_id, nonce);
        if recent.set.insert(h) {
            recent.order.push_back(h);
            if recent.order.len() > RECENT_NONCES_MAX
                && let Some(oldest) = recent.order.pop_front()
            {
                recent.set.remove(&oldest);
            }
        }
    }

    fn nonce_seen(&self, key_id: &str, nonce: &str) -> bool {
        let recent = lock(&self.recent);
        recent.set.contains(&recent.hash(key_id, nonce))
    }
}

/// Whether this node recorded or refused `call`'s nonce lately: a replay, as far as this node
/// knows (the nonce write decides; this only says whether to wait for it first).
pub fn seen_recently(cache: &KeyCache, call: &Verified) -> bool {
    cache.nonce_seen(&call.key.key_id, &call.nonce)
}

/// Authenticates `req` at `now_ms` and returns the caller's key.
pub async fn authenticate(
    store: &dyn Store,
    cache: &KeyCache,
    req: &RawRequest,
    now_ms: i64,
) -> Result<AccessKey, ApiError> {
    authenticate_with(&StoreKeys(store), cache, RPC, req, now_ms).await
}

/// [`authenticate`] for a request to `target` (the object routes).
pub async fn authenticate_for(
    store: &dyn Store,
    cache: &KeyCache,
    req: &RawRequest,
    target: Target<'_>,
    now_ms: i64,
) -> Result<AccessKey, ApiError> {
    authenticate_with(&StoreKeys(store), cache, target, req, now_ms).await
}

/// A call whose signature and date checked out against `key` (perhaps a kept copy); its nonce
/// is not recorded yet. Nothing of the call's answer may leave the server before [`record`]
/// says [`Recorded::Yes`].
#[derive(Debug)]
pub struct Verified {
    pub key: AccessKey,
    nonce: String,
    nonce_expires_ms: i64,
    from_cache: bool,
}

/// What recording a verified call's nonce found, when not a refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded: the call is authenticated as `Verified::key`.
    Yes,
    /// The kept copy of the key was out of date; nothing was recorded, the copy is dropped,
    /// and the call must be authenticated afresh ([`authenticate`]).
    Stale,
}

/// Checks `req`'s shape, key, signature and date, without recording its nonce.
pub async fn verify(
    store: &dyn Store,
    cache: &KeyCache,
    req: &RawRequest,
    now_ms: i64,
) -> Result<Verified, ApiError> {
    verify_with(&StoreKeys(store), cache, RPC, req, now_ms, true).await
}

/// Records the nonce of a [`verify`]d call.
pub async fn record(
    store: &dyn Store,
    cache: &KeyCache,
    call: &Verified,
) -> Result<Recorded, ApiError> {
    record_with(&StoreKeys(store), cache, call).await
}

/// Records a [`verify`]d call's nonce and returns its caller; when the kept copy of its key
/// was out of date, the call is authenticated afresh against the stored key.
pub async fn confirm(
    store: &dyn Store,
    cache: &KeyCache,
    call: Verified,
    req: &RawRequest,
    now_ms: i64,
) -> Result<AccessKey, ApiError> {
    match record(store, cache, &call).await? {
        Recorded::Yes => Ok(call.key),
        Recorded::Stale => authenticate(store, cache, req, now_ms).await,
    }
}

/// The key from the cache when it has one (and `use_cache`), else from the store; when a kept
/// copy fails the signature the check is repeated with the stored key. The copy stays until a
/// call proves it out of date (a signed call with the stored key replaces it, the nonce write
/// finds it changed): a request with a bad signature, which anyone can send naming any key,
/// must not be able to evict it.
async fn verify_with(
    keys: &impl KeyStore,
    cache: &KeyCache,
    target: Target<'_>,
    req: &RawRequest,
    now_ms: i64,
    use_cache: bool,
) -> Result<Verified, ApiError> {
    let signed = parse_signed_for(req, target)?;
    if use_cache
        && let Some(key) = cache.get(&signed.key_id)
        && signed.check(&key.secret, now_ms).is_ok()
    {
        return Ok(Verified {
            key,
            nonce: signed.nonce.clone(),
            nonce_expires_ms: signed.nonce_expires_ms(),
            from_cache: true,
        });
    }
    let Some(key) = keys.access_key(&signed.key_id).await? else {
        // The same HMAC as for a known key, so the time taken does not tell them apart either.
        let _ = signed.verify(UNKNOWN_KEY_SECRET);
        return Err(ApiError::SignatureDoesNotMatch);
    };
    signed.check(&key.secret, now_ms)?;
    Ok(Verified {
        key,
        nonce: signed.nonce.clone(),
        nonce_expires_ms: signed.nonce_expires_ms(),
        from_cache: false,
    })
}

async fn record_with(
    keys: &impl KeyStore,
    cache: &KeyCache,
    call: &Verified,
) -> Result<Recorded, ApiError> {
    match keys
        .remember_nonce(&call.key, &call.nonce, call.nonce_expires_ms)
        .await?
    {
        Nonce::Fresh => {
            cache.keep(&call.key);
            cache.note_nonce(&call.key.key_id, &call.nonce);
            Ok(Recorded::Yes)
        }
        Nonce::Replay => {
            cache.note_nonce(&call.key.key_id, &call.nonce);
            Err(ApiError::NonceUsed)
        }
        Nonce::KeyChanged => {
            cache.forget(&call.key.key_id);
            if call.from_cache {
                Ok(Recorded::Stale)
            } else {
                // Changed between the read and the write just now: as good as gone, and
                // answered as any key that is not there.
                Err(ApiError::SignatureDoesNotMatch)
            }
        }
    }
}

/// The checks in their order: [`verify_with`], then [`record_with`]; a kept copy found out of
/// date is dropped and the call checked once more against the key as the store has it now.
async fn authenticate_with(
    keys: &impl KeyStore,
    cache: &KeyCache,
    target: Target<'_>,
    req: &RawRequest,
    now_ms: i64,
) -> Result<AccessKey, ApiError> {
    let mut use_cache = true;
    loop {
        let call = verify_with(keys, cache, target, req, now_ms, use_cache).await?;
        match record_with(keys, cache, &call).await? {
            Recorded::Yes => return Ok(call.key),
            Recorded::Stale => use_cache = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    const UA: &str = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const MINUTE: i64 = 60_000;
    const QUERY_A: &str = "InvokeId=inv-1&MaxResults=10&Param=a+b%2Ac~d%2F%E4%B8%AD\
        &ResourceIds.1=acp-1&ResourceIds.2=acp-2&TaskStatuses.1=Finished&TaskStatuses.2=Failed";
    const SIGNED_A: &str = "accept;host;user-agent;x-acs-action;x-acs-content-sha256;\
        x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version";
    const SIG_A: &str = "61d20b2eadda13f12231787e6cbbafbd596ab555914c6be3ec7f1018f39070b2";
    const QUERY_C: &str = "Action=DescribeTasks&Format=json&Version=2023-09-30\
        &Timestamp=2025-01-01T00%3A00%3A00Z&SignatureNonce=00112233445566778899aabbccddeeff\
        &InvokeId=inv-1&MaxResults=10&Param=a+b%2Ac~d%2F%E4%B8%AD&ResourceIds.1=acp-1\
        &ResourceIds.2=acp-2&TaskStatuses.1=Finished&TaskStatuses.2=Failed\
        &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&AccessKeyId=testid\
        &Signature=2UVUbBxZAxSWrbDhg3VHaJL8o6I%3D";

    fn now() -> i64 {
        parse_iso("2025-01-01T00:00:00Z").unwrap()
    }

    fn request(method: &str, headers: &[(&str, &str)], query: &str, body: &[u8]) -> RawRequest {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        RawRequest::from_parts(method, &map, Some(query), body.to_vec(), 1000).unwrap()
    }

    fn headers_a() -> Vec<(&'static str, String)> {
        vec![
            ("host", "127.0.0.1:18096".into()),
            ("x-acs-version", "2023-09-30".into()),
            ("x-acs-action", "DescribeTasks".into()),
            ("user-agent", UA.into()),
            ("x-acs-date", "2025-01-01T00:00:00Z".into()),
            (
                "x-acs-signature-nonce",
                "0123456789abcdef0123456789abcdef".into(),
            ),
            ("accept", "application/json".into()),
            ("x-acs-content-sha256", EMPTY_SHA256.into()),
            ("x-acs-credentials-provider", "static_ak".into()),
            (
                "authorization",
                format!(
                    "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={SIGNED_A},Signature={SIG_A}"
                ),
            ),
            ("content-length", "0".into()),
            ("accept-encoding", "identity".into()),
        ]
    }

    fn build(
        method: &str,
        headers: &[(&'static str, String)],
        query: &str,
        body: &[u8],
    ) -> RawRequest {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(method, &h, query, body)
    }

    fn vector_a() -> RawRequest {
        build("POST", &headers_a(), QUERY_A, b"")
    }

    fn with_header(
        mut headers: Vec<(&'static str, String)>,
        name: &str,
        value: &str,
    ) -> Vec<(&'static str, String)> {
        for (k, v) in &mut headers {
            if *k == name {
                *v = value.to_string();
            }
        }
        headers
    }

    fn without_header(
        headers: Vec<(&'static str, String)>,
        name: &str,
    ) -> Vec<(&'static str, String)> {
        headers.into_iter().filter(|(k, _)| *k != name).collect()
    }

    fn authorization(signed: &str) -> String {
        format!("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={signed},Signature={SIG_A}")
    }

    #[test]
    fn vector_a_verifies() {
        let signed = parse_signed(&vector_a()).unwrap();
        assert_eq!(signed.key_id, "testid");
        assert_eq!(signed.nonce, "0123456789abcdef0123456789abcdef");
        assert_eq!(signed.date_ms, now());
        assert!(matches!(
            &signed.proof,
            Proof::Acs3 { string_to_sign, .. } if string_to_sign ==
                "ACS3-HMAC-SHA256\n14dc701cec8d6104fc58108eb06f8b218359ff7b2710961f5d06f475efdaffb0"
        ));
        assert_eq!(signed.check("testsecret", now()), Ok(()));
        assert_eq!(signed.check("testsecret", now() + 15 * MINUTE), Ok(()));
        assert_eq!(signed.check("testsecret", now() - 15 * MINUTE), Ok(()));
        assert_eq!(signed.nonce_expires_ms(), now() + 16 * MINUTE);
    }

    #[test]
    fn vector_a_negative() {
        let signed = parse_signed(&vector_a()).unwrap();
        assert_eq!(
            signed.check("testsecreT", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
        assert_eq!(
            signed.check("testsecret", now() + 16 * MINUTE),
            Err(ApiError::TimestampExpired)
        );
        assert_eq!(
            signed.check("testsecret", now() - 16 * MINUTE),
            Err(ApiError::TimestampExpired)
        );
        // A changed query value, header value or method.
        let req = build(
            "POST",
            &headers_a(),
            &QUERY_A.replace("inv-1", "inv-2"),
            b"",
        );
        assert_eq!(
            parse_signed(&req).unwrap().verify("testsecret"),
            Err(ApiError::SignatureDoesNotMatch)
        );
        let req = build(
            "POST",
            &with_header(headers_a(), "accept", "text/xml"),
            QUERY_A,
            b"",
        );
        assert_eq!(
            parse_signed(&req).unwrap().verify("testsecret"),
            Err(ApiError::SignatureDoesNotMatch)
        );
        let req = build("GET", &headers_a(), QUERY_A, b"");
        assert_eq!(
            parse_signed(&req).unwrap().verify("testsecret"),
            Err(ApiError::SignatureDoesNotMatch)
        );
        // An extra query parameter counts, even one the action ignores.
        let req = build("POST", &headers_a(), &format!("{QUERY_A}&X="), b"");
        assert_eq!(
            parse_signed(&req).unwrap().verify("testsecret"),
            Err(ApiError::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn unsigned_headers_do_not_matter() {
        let mut headers = headers_a();
        headers.push(("x-forwarded-for", "10.0.0.1".into()));
        let req = build(
            "POST",
            &without_header(headers, "accept-encoding"),
            QUERY_A,
            b"",
        );
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Ok(())
        );
    }

    #[test]
    fn body_must_match_its_hash() {
        let req = build("POST", &headers_a(), QUERY_A, b"x");
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn vector_b_form_body_verifies() {
        let body = b"ImageId=imgc-1&InstanceGroupIds.1=ag-1&InstanceGroupIds.2=ag-2";
        let headers: Vec<(&'static str, String)> = vec![
            ("host", "127.0.0.1:18096".into()),
            ("x-acs-version", "2023-09-30".into()),
            ("x-acs-action", "UpdateInstanceGroupImage".into()),
            ("user-agent", UA.into()),
            ("x-acs-date", "2025-01-01T00:00:00Z".into()),
            (
                "x-acs-signature-nonce",
                "fedcba9876543210fedcba9876543210".into(),
            ),
            ("accept", "application/json".into()),
            ("content-type", "application/x-www-form-urlencoded".into()),
            (
                "x-acs-content-sha256",
                "0a0c8ba3df262312e7941ac1ede7062cda598e14d897731318652e7729afe904".into(),
            ),
            ("x-acs-credentials-provider", "static_ak".into()),
            (
                "authorization",
                "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;content-type;host;\
                 user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;\
                 x-acs-date;x-acs-signature-nonce;x-acs-version,\
                 Signature=96e5dac9a49733ccdb153a3387b39603b3ed399355690054ec154b99b19460e3"
                    .into(),
            ),
        ];
        let req = build("POST", &headers, "", body);
        assert_eq!(req.body_form.len(), 3);
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Ok(())
        );
        let req = build(
            "POST",
            &headers,
            "",
            b"ImageId=imgc-2&InstanceGroupIds.1=ag-1&InstanceGroupIds.2=ag-2",
        );
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
    }

    fn incomplete(req: &RawRequest) -> bool {
        matches!(parse_signed(req), Err(ApiError::IncompleteSignature(_)))
    }

    #[test]
    fn acs3_shape_errors() {
        for required in REQUIRED_SIGNED_HEADERS {
            let signed: Vec<&str> = SIGNED_A.split(';').filter(|h| h != required).collect();
            let headers = with_header(
                headers_a(),
                "authorization",
                &authorization(&signed.join(";")),
            );
            assert!(
                incomplete(&build("POST", &headers, QUERY_A, b"")),
                "{required}"
            );
        }
        // A signed header that did not arrive.
        let headers = without_header(headers_a(), "user-agent");
        assert!(incomplete(&build("POST", &headers, QUERY_A, b"")));
        // A signed header that arrived twice.
        let mut headers = headers_a();
        headers.push(("x-acs-action", "DeleteAndroidInstanceGroup".into()));
        assert!(incomplete(&build("POST", &headers, QUERY_A, b"")));
        // An empty nonce.
        let headers = with_header(headers_a(), "x-acs-signature-nonce", "");
        assert_eq!(
            parse_signed(&build("POST", &headers, QUERY_A, b"")),
            Err(ApiError::missing("x-acs-signature-nonce"))
        );
        let headers = with_header(headers_a(), "x-acs-signature-nonce", &"n".repeat(129));
        assert_eq!(
            parse_signed(&build("POST", &headers, QUERY_A, b""))
                .unwrap_err()
                .code(),
            "InvalidParameter.x-acs-signature-nonce"
        );
        // Other algorithms.
        let headers = with_header(
            headers_a(),
            "authorization",
            &authorization(SIGNED_A).replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3"),
        );
        assert_eq!(
            parse_signed(&build("POST", &headers, QUERY_A, b"")),
            Err(ApiError::UnsupportedSignatureMethod("ACS3-HMAC-SM3".into()))
        );
    }

    #[test]
    fn acs3_bad_date() {
        for date in ["2025-01-01", "yesterday", "", "2025-13-01T00:00:00Z"] {
            let headers = with_header(headers_a(), "x-acs-date", date);
            assert_eq!(
                parse_signed(&build("POST", &headers, QUERY_A, b""))
                    .unwrap_err()
                    .code(),
                "InvalidParameter.x-acs-date",
                "{date:?}"
            );
        }
    }

    #[test]
    fn unsigned_requests() {
        let headers = without_header(headers_a(), "authorization");
        assert!(incomplete(&build("POST", &headers, QUERY_A, b"")));
        let headers = with_header(headers_a(), "authorization", "Bearer abc");
        assert!(incomplete(&build("POST", &headers, QUERY_A, b"")));
        assert!(incomplete(&RawRequest::default()));
    }

    fn v1_headers() -> Vec<(&'static str, String)> {
        vec![
            ("host", "127.0.0.1:18096".into()),
            ("x-acs-version", "2023-09-30".into()),
            ("x-acs-action", "DescribeTasks".into()),
            ("user-agent", UA.into()),
            ("x-acs-credentials-provider", "static_ak".into()),
        ]
    }

    fn vector_c() -> RawRequest {
        build("POST", &v1_headers(), QUERY_C, b"")
    }

    #[test]
    fn vector_c_verifies() {
        let signed = parse_signed(&vector_c()).unwrap();
        assert_eq!(signed.key_id, "testid");
        assert_eq!(signed.nonce, "00112233445566778899aabbccddeeff");
        assert_eq!(signed.date_ms, now());
        assert_eq!(signed.check("testsecret", now()), Ok(()));
        assert_eq!(
            signed.check("testsecreT", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
        assert_eq!(
            signed.check("testsecret", now() + 16 * MINUTE),
            Err(ApiError::TimestampExpired)
        );
        let req = build("GET", &v1_headers(), QUERY_C, b"");
        assert_eq!(
            parse_signed(&req).unwrap().verify("testsecret"),
            Err(ApiError::SignatureDoesNotMatch)
        );
        let req = build(
            "POST",
            &v1_headers(),
            &QUERY_C.replace("inv-1", "inv-2"),
            b"",
        );
        assert_eq!(
            parse_signed(&req).unwrap().verify("testsecret"),
            Err(ApiError::SignatureDoesNotMatch)
        );
    }

    /// The classic SDK's shape: GET, with an empty `SignatureType=` among the signed parameters.
    /// Signature computed independently with the contract's stdlib recomputation (§2.4).
    #[test]
    fn legacy_get_with_empty_value() {
        let query = "InvokeId=inv-1&MaxResults=10&Param=a+b%2Ac~d%2F%E4%B8%AD&ResourceIds.1=acp-1\
            &ResourceIds.2=acp-2&TaskStatuses.1=Finished&TaskStatuses.2=Failed\
            &Action=DescribeTasks&Format=json&Version=2023-09-30\
            &Timestamp=2025-01-01T00%3A00%3A00Z&SignatureNonce=00112233445566778899aabbccddeeff\
            &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&AccessKeyId=testid&SignatureType=\
            &Signature=JYPnhullpGGaYQ8tROy%2BRaO2FxY%3D";
        let req = build("GET", &v1_headers(), query, b"");
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Ok(())
        );
        let req = build(
            "GET",
            &v1_headers(),
            &query.replace("&SignatureType=", ""),
            b"",
        );
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
    }

    /// Form-body parameters are signed too (signature from the contract's recomputation).
    #[test]
    fn legacy_signs_the_form_body() {
        let query = "Action=UpdateInstanceGroupImage&Format=json&Version=2023-09-30\
            &Timestamp=2025-01-01T00%3A00%3A00Z&SignatureNonce=ffeeddccbbaa99887766554433221100\
            &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&AccessKeyId=testid\
            &Signature=GOQgwZFegjqnWOAaDeQ1WXSSNJw%3D";
        let mut headers = v1_headers();
        headers.push(("content-type", "application/x-www-form-urlencoded".into()));
        let body = b"ImageId=imgc-1&InstanceGroupIds.1=ag-1&InstanceGroupIds.2=ag-2";
        let req = build("POST", &headers, query, body);
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Ok(())
        );
        let req = build(
            "POST",
            &headers,
            query,
            b"ImageId=imgc-1&InstanceGroupIds.1=ag-1",
        );
        assert_eq!(
            parse_signed(&req).unwrap().check("testsecret", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
    }

    fn replace_param(query: &str, name: &str, value: Option<&str>) -> String {
        query
            .split('&')
            .filter_map(|pair| match pair.split_once('=') {
                Some((k, _)) if k == name => value.map(|v| format!("{k}={v}")),
                _ => Some(pair.to_string()),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn legacy_shape_errors() {
        let parse = |name: &str, value: Option<&str>| {
            parse_signed(&build(
                "POST",
                &v1_headers(),
                &replace_param(QUERY_C, name, value),
                b"",
            ))
        };
        for name in [
            "AccessKeyId",
            "Timestamp",
            "SignatureNonce",
            "SignatureMethod",
            "SignatureVersion",
        ] {
            assert_eq!(parse(name, None), Err(ApiError::missing(name)), "{name}");
            assert_eq!(
                parse(name, Some("")),
                Err(ApiError::missing(name)),
                "{name}"
            );
        }
        assert_eq!(
            parse("SignatureMethod", Some("HMAC-SHA256")),
            Err(ApiError::UnsupportedSignatureMethod("HMAC-SHA256".into()))
        );
        assert_eq!(
            parse("SignatureVersion", Some("2.0")).unwrap_err().code(),
            "InvalidParameter.SignatureVersion"
        );
        assert_eq!(
            parse("Timestamp", Some("2025-01-01")).unwrap_err().code(),
            "InvalidParameter.Timestamp"
        );
        assert!(matches!(
            parse("Signature", Some("")),
            Err(ApiError::IncompleteSignature(_))
        ));
        let twice = format!("{QUERY_C}&AccessKeyId=other");
        assert_eq!(
            parse_signed(&build("POST", &v1_headers(), &twice, b""))
                .unwrap_err()
                .code(),
            "InvalidParameter.AccessKeyId"
        );
    }

    #[test]
    fn acs3_wins_over_legacy() {
        let req = build(
            "POST",
            &headers_a(),
            &format!("{QUERY_A}&Signature=abc"),
            b"",
        );
        assert!(matches!(
            parse_signed(&req).unwrap().proof,
            Proof::Acs3 { .. }
        ));
    }

    /// An upload to an object route: signed over its real path, with the claimed hash of a
    /// body that is streamed afterwards. Signature from the stdlib recomputation of the SDK
    /// tests (`acs3_signature` in tests/sdk/conftest.py).
    fn object_put(path_signed: &str, content_sha256: &str) -> RawRequest {
        let signed = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;\
            x-acs-version";
        let headers: Vec<(&'static str, String)> = vec![
            ("host", "127.0.0.1:9723".into()),
            ("x-acs-action", "PutObject".into()),
            ("x-acs-version", "2023-09-30".into()),
            ("x-acs-date", "2025-01-01T00:00:00Z".into()),
            (
                "x-acs-signature-nonce",
                "0123456789abcdef0123456789abcdef".into(),
            ),
            ("x-acs-content-sha256", content_sha256.into()),
            (
                "authorization",
                format!(
                    "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={signed},\
                     Signature={path_signed}"
                ),
            ),
        ];
        build("PUT", &headers, "", b"")
    }

    const CONTENT_SHA256: &str = "ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73";
    const SIG_PUT: &str = "829a2b22b39a516eaf52e0862994f0b2b867e8ecb8c33f2bc4a497cbecd2fe88";
    const PUT_PATH: &str = "/files/my-bucket/dir/a%20b%2Bc/%E4%B8%AD.apk";

    #[test]
    fn object_routes_sign_their_path() {
        let streamed = Target {
            path: PUT_PATH,
            streamed_body: true,
        };
        let req = object_put(SIG_PUT, CONTENT_SHA256);
        assert_eq!(
            parse_signed_for(&req, streamed)
                .unwrap()
                .check("testsecret", now()),
            Ok(())
        );
        // Another path, or the RPC path, does not verify.
        let other = Target {
            path: "/files/my-bucket/dir/a%20b%2Bc/%E4%B8%AD.apj",
            ..streamed
        };
        for target in [other, RPC] {
            assert_eq!(
                parse_signed_for(&req, target)
                    .unwrap()
                    .check("testsecret", now()),
                Err(ApiError::SignatureDoesNotMatch)
            );
        }
        // Without a streamed body, the (empty) body must match the claimed hash: it does not.
        let in_hand = Target {
            streamed_body: false,
            ..streamed
        };
        assert_eq!(
            parse_signed_for(&req, in_hand)
                .unwrap()
                .check("testsecret", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
        // Another claimed hash is another signed request.
        let req = object_put(SIG_PUT, EMPTY_SHA256);
        assert_eq!(
            parse_signed_for(&req, streamed)
                .unwrap()
                .check("testsecret", now()),
            Err(ApiError::SignatureDoesNotMatch)
        );
        // A streamed body needs a real hash to be held to.
        for claimed in ["", "abc", "UNSIGNED-PAYLOAD", &"g".repeat(64)] {
            assert_eq!(
                parse_signed_for(&object_put(SIG_PUT, claimed), streamed)
                    .unwrap_err()
                    .code(),
                "InvalidParameter.x-acs-content-sha256",
                "{claimed:?}"
            );
        }
    }

    #[tokio::test]
    async fn object_routes_take_acs3_only() {
        let target = Target {
            path: "/files/b/k",
            streamed_body: false,
        };
        assert!(matches!(
            parse_signed_for(&vector_c(), target),
            Err(ApiError::IncompleteSignature(_))
        ));
        let keys = FakeKeys::default();
        let streamed = Target {
            path: PUT_PATH,
            streamed_body: true,
        };
        let req = object_put(SIG_PUT, CONTENT_SHA256);
        let key = authenticate_with(&keys, &keys.cache, streamed, &req, now())
            .await
            .unwrap();
        assert_eq!(key.account_id, "acc-1");
        assert_eq!(
            authenticate_with(&keys, &keys.cache, streamed, &req, now()).await,
            Err(ApiError::NonceUsed)
        );
    }

    /// An in-memory stand-in for the two store calls, with one key ("testid") that a test may
    /// delete or replace (`replaced`), and a count of key reads.
    #[derive(Default)]
    struct FakeKeys {
        fail: bool,
        nonces: Mutex<BTreeSet<(String, String)>>,
        expiries: Mutex<Vec<i64>>,
        replaced: Mutex<Option<Option<AccessKey>>>,
        reads: std::sync::atomic::AtomicUsize,
        cache: KeyCache,
    }

    fn test_key() -> AccessKey {
        AccessKey {
            key_id: "testid".into(),
            secret: "testsecret".into(),
            account_id: "acc-1".into(),
            user_name: "tester".into(),
        }
    }

    impl FakeKeys {
        fn stored(&self) -> Option<AccessKey> {
            match &*self.replaced.lock().unwrap() {
                Some(k) => k.clone(),
                None => Some(test_key()),
            }
        }

        fn reads(&self) -> usize {
            self.reads.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl KeyStore for FakeKeys {
        async fn access_key(&self, key_id: &str) -> Result<Option<AccessKey>, ApiError> {
            if self.fail {
                return Err(ApiError::Internal);
            }
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.stored().filter(|k| k.key_id == key_id))
        }

        async fn remember_nonce(
            &self,
            key: &AccessKey,
            nonce: &str,
            expires_ms: i64,
        ) -> Result<Nonce, ApiError> {
            if self.stored().as_ref() != Some(key) {
                return Ok(Nonce::KeyChanged);
            }
            self.expiries.lock().unwrap().push(expires_ms);
            let fresh = self
                .nonces
                .lock()
                .unwrap()
                .insert((key.key_id.clone(), nonce.to_string()));
            Ok(if fresh { Nonce::Fresh } else { Nonce::Replay })
        }
    }

    #[test]
    fn recent_nonces_are_remembered_up_to_a_bound() {
        let cache = KeyCache::default();
        cache.note_nonce("k", "first");
        assert!(cache.nonce_seen("k", "first"));
        assert!(!cache.nonce_seen("k", "other") && !cache.nonce_seen("k2", "first"));
        for n in 0..RECENT_NONCES_MAX {
            cache.note_nonce("k", &n.to_string());
        }
        assert!(!cache.nonce_seen("k", "first"), "the oldest is forgotten");
        assert!(
            cache.nonce_seen("k", "0")
                && cache.nonce_seen("k", &(RECENT_NONCES_MAX - 1).to_string())
        );
    }

    /// The cache saves the key read of later calls, but every call's nonce write checks the copy:
    /// a key deleted or given another secret is refused at its next call.
    #[tokio::test]
    async fn a_kept_key_is_checked_against_the_store_at_every_call() {
        let keys = FakeKeys::default();
        let call =
            async |req: RawRequest| authenticate_with(&keys, &keys.cache, RPC, &req, now()).await;
        assert!(call(vector_a()).await.is_ok());
        assert_eq!(keys.reads(), 1);
        assert!(call(vector_c()).await.is_ok());
        assert_eq!(keys.reads(), 1, "the second call used the kept key");

        // A bad signature, which anyone can send, is checked against the stored key too, but
        // does not evict the kept one.
        let tampered = build(
            "POST",
            &headers_a(),
            &QUERY_A.replace("inv-1", "inv-2"),
            b"",
        );
        assert_eq!(call(tampered).await, Err(ApiError::SignatureDoesNotMatch));
        keys.nonces.lock().unwrap().clear();
        let reads = keys.reads();
        assert!(call(vector_a()).await.is_ok());
        assert_eq!(keys.reads(), reads, "the kept key was still there");

        *keys.replaced.lock().unwrap() = Some(None);
        keys.nonces.lock().unwrap().clear();
        assert_eq!(call(vector_a()).await, Err(ApiError::SignatureDoesNotMatch));
        assert!(keys.nonces.lock().unwrap().is_empty(), "nothing recorded");

        // Back, then given another secret while a copy with the old one is kept.
        *keys.replaced.lock().unwrap() = None;
        assert!(call(vector_a()).await.is_ok());
        let mut rotated = test_key();
        rotated.secret = "rotated".into();
        *keys.replaced.lock().unwrap() = Some(Some(rotated));
        let reads = keys.reads();
        assert_eq!(call(vector_c()).await, Err(ApiError::SignatureDoesNotMatch));
        assert_eq!(
            keys.reads(),
            reads + 1,
            "the out-of-date copy was read again"
        );
        assert!(
            !keys
                .nonces
                .lock()
                .unwrap()
                .iter()
                .any(|(_, n)| n.starts_with("0011")),
            "vector C's nonce was not recorded"
        );
    }

    #[tokio::test]
    async fn accepts_once_then_refuses_the_replay() {
        let keys = FakeKeys::default();
        let key = authenticate_with(&keys, &keys.cache, RPC, &vector_a(), now())
            .await
            .unwrap();
        assert_eq!(key.account_id, "acc-1");
        assert_eq!(*keys.expiries.lock().unwrap(), [now() + 16 * MINUTE]);
        assert_eq!(
            authenticate_with(&keys, &keys.cache, RPC, &vector_a(), now() + MINUTE).await,
            Err(ApiError::NonceUsed)
        );
        // Vector C has another nonce; the legacy scheme shares the nonce table.
        assert!(
            authenticate_with(&keys, &keys.cache, RPC, &vector_c(), now())
                .await
                .is_ok()
        );
        assert_eq!(
            authenticate_with(&keys, &keys.cache, RPC, &vector_c(), now()).await,
            Err(ApiError::NonceUsed)
        );
    }

    #[tokio::test]
    async fn failures_do_not_use_up_the_nonce() {
        let keys = FakeKeys::default();
        let tampered = build(
            "POST",
            &headers_a(),
            &QUERY_A.replace("inv-1", "inv-2"),
            b"",
        );
        assert_eq!(
            authenticate_with(&keys, &keys.cache, RPC, &tampered, now()).await,
            Err(ApiError::SignatureDoesNotMatch)
        );
        assert_eq!(
            authenticate_with(&keys, &keys.cache, RPC, &vector_a(), now() + 20 * MINUTE).await,
            Err(ApiError::TimestampExpired)
        );
        assert!(keys.nonces.lock().unwrap().is_empty());
        assert!(
            authenticate_with(&keys, &keys.cache, RPC, &vector_a(), now())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn unknown_key_and_store_failure() {
        let keys = FakeKeys::default();
        let headers = with_header(
            headers_a(),
            "authorization",
            &authorization(SIGNED_A).replace("Credential=testid", "Credential=nobody"),
        );
        assert_eq!(
            authenticate_with(
                &keys,
                &keys.cache,
                RPC,
                &build("POST", &headers, QUERY_A, b""),
                now()
            )
            .await,
            Err(ApiError::SignatureDoesNotMatch),
            "an unknown key answers as a bad signature"
        );
        let failing = FakeKeys {
            fail: true,
            ..FakeKeys::default()
        };
        assert_eq!(
            authenticate_with(&failing, &failing.cache, RPC, &vector_a(), now()).await,
            Err(ApiError::Internal)
        );
    }

    /// Handlers run on a multi-threaded runtime, so the future must be `Send`.
    #[allow(dead_code)]
    fn authenticate_is_send(store: &dyn Store, cache: &KeyCache, req: &RawRequest) {
        fn assert_send<T: Send>(_: T) {}
        assert_send(authenticate(store, cache, req, 0));
    }
}
