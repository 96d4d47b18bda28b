//! Whole requests signed with ACS3-HMAC-SHA256 exactly as the SDK signs them: the headers
//! `x-acs-action`, `x-acs-version`, `x-acs-date`, `x-acs-signature-nonce` and
//! `x-acs-content-sha256` (and `accept` where one is sent), parameters in the query.
//!
//! Signing is a pure function of the call, the date and the nonce ([`sign`], [`sign_request`]),
//! so the same request can be sent at once or written out pre-signed (the benchmark's `wrk`
//! files).

use crate::protocol::{ACS3_HMAC_SHA256, EMPTY_SHA256, VERSION};
use crate::signature::{canonical_request_v3_at, pct, sign_v3, string_to_sign_v3};

/// An access key: its id, and the secret it signs with.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
}

/// One signed call, ready to send: `{method} {target}` with `headers` (names in lower case,
/// sorted, `authorization` last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCall {
    /// Path and query: `/?Name=value&...`, values percent-encoded.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

/// What is signed beside the action and its parameters.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The canonical path: `/` for the RPC API, the percent-encoded route for objects.
    pub path: &'a str,
    /// The `accept` header, signed when given.
    pub accept: Option<&'a str>,
    /// Lower-case hex SHA-256 of the body ([`EMPTY_SHA256`] for none).
    pub body_sha256: &'a str,
}

/// An RPC call: `POST /`, JSON back, parameters in the query and an empty body.
pub const RPC: Request<'static> = Request {
    method: "POST",
    path: "/",
    accept: Some("application/json"),
    body_sha256: EMPTY_SHA256,
};

/// A fresh nonce: 32 hex characters, as the SDK sends (the server refuses a nonce seen before).
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    // The operating system's generator; without one no call could be made safely anyway.
    getrandom::fill(&mut bytes).expect("the system's random number generator");
    hex::encode(bytes)
}

/// Signs the RPC call `action` with `params` for the server at `host` (as sent in `Host`).
pub fn sign(
    creds: &Credentials,
    host: &str,
    action: &str,
    params: &[(String, String)],
    date: &str,
    nonce: &str,
) -> SignedCall {
    sign_request(creds, host, &RPC, action, params, date, nonce)
}

/// Signs `action` with `params` (in the query) as `request`; the target is the path with the
/// query.
pub fn sign_request(
    creds: &Credentials,
    host: &str,
    request: &Request<'_>,
    action: &str,
    params: &[(String, String)],
    date: &str,
    nonce: &str,
) -> SignedCall {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(8);
    if let Some(accept) = request.accept {
        headers.push(("accept".into(), accept.to_string()));
    }
    headers.extend([
        ("host".into(), host.to_string()),
        ("x-acs-action".into(), action.to_string()),
        (
            "x-acs-content-sha256".into(),
            request.body_sha256.to_string(),
        ),
        ("x-acs-date".into(), date.to_string()),
        ("x-acs-signature-nonce".into(), nonce.to_string()),
        ("x-acs-version".into(), VERSION.into()),
    ]);
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let canonical = canonical_request_v3_at(
        request.method,
        request.path,
        params,
        &headers,
        &names,
        request.body_sha256,
    );
    let signature = sign_v3(&creds.secret, &string_to_sign_v3(&canonical));
    let authorization = format!(
        "{ACS3_HMAC_SHA256} Credential={},SignedHeaders={},Signature={signature}",
        creds.key_id,
        names.join(";")
    );
    headers.push(("authorization".into(), authorization));
    SignedCall {
        target: target(request.path, params),
        headers,
    }
}

/// `path?k=v&...` with keys and values percent-encoded, in the order given.
pub(crate) fn target(path: &str, params: &[(String, String)]) -> String {
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&");
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// Parameters from string pairs.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A list parameter: `Name.1=a&Name.2=b...`.
pub fn push_list(params: &mut Vec<(String, String)>, name: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        params.push((format!("{name}.{}", i + 1), v.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::canonical_request_v3;
    use crate::vectors::vector_a_query;

    fn creds() -> Credentials {
        Credentials {
            key_id: "testid".into(),
            secret: "testsecret".into(),
        }
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        params(pairs)
    }

    #[test]
    fn an_rpc_call_signs_its_headers_and_query() {
        let p = owned(&[("InvokeId", "inv-1"), ("Param", "a b*c~d/中")]);
        let call = sign(
            &creds(),
            "127.0.0.1:9",
            "DescribeTasks",
            &p,
            "2025-01-01T00:00:00Z",
            "0123456789abcdef0123456789abcdef",
        );
        assert_eq!(
            call.target,
            "/?InvokeId=inv-1&Param=a%20b%2Ac~d%2F%E4%B8%AD"
        );
        let names: Vec<&str> = call.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "accept",
                "host",
                "x-acs-action",
                "x-acs-content-sha256",
                "x-acs-date",
                "x-acs-signature-nonce",
                "x-acs-version",
                "authorization"
            ]
        );
        // The signature is that of the canonical request a server rebuilds from the headers.
        let received = &call.headers[..call.headers.len() - 1];
        let canonical = canonical_request_v3("POST", &p, received, &names[..7], EMPTY_SHA256);
        let expected = sign_v3("testsecret", &string_to_sign_v3(&canonical));
        assert_eq!(
            call.headers.last().unwrap().1,
            format!(
                "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;host;x-acs-action;\
                 x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
                 Signature={expected}"
            )
        );
    }

    #[test]
    fn the_contract_vector_a_query_line() {
        let p: Vec<(String, String)> = vector_a_query()
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let call = sign(
            &creds(),
            "127.0.0.1:18096",
            "DescribeTasks",
            &p,
            "2025-01-01T00:00:00Z",
            "0123456789abcdef0123456789abcdef",
        );
        // Our header set is smaller than the SDK's (no user-agent, no credentials provider),
        // so the signature differs from the vector's; the query must not.
        assert_eq!(
            call.target,
            "/?InvokeId=inv-1&MaxResults=10&Param=a%20b%2Ac~d%2F%E4%B8%AD&ResourceIds.1=acp-1\
             &ResourceIds.2=acp-2&TaskStatuses.1=Finished&TaskStatuses.2=Failed"
        );
    }

    #[test]
    fn an_object_request_signs_its_path_and_body_without_accept() {
        let sha = crate::signature::sha256_hex(b"body");
        let request = Request {
            method: "PUT",
            path: "/files/b/a%20b.txt",
            accept: None,
            body_sha256: &sha,
        };
        let call = sign_request(&creds(), "h:1", &request, "PutObject", &[], "d", "n");
        assert_eq!(call.target, "/files/b/a%20b.txt");
        assert_eq!(call.headers[0], ("host".into(), "h:1".into()));
        assert!(
            call.headers
                .contains(&("x-acs-content-sha256".into(), sha.clone()))
        );
        let names: Vec<&str> = call.headers[..6].iter().map(|(n, _)| n.as_str()).collect();
        let canonical = canonical_request_v3_at::<&str, &str>(
            "PUT",
            "/files/b/a%20b.txt",
            &[],
            &call.headers,
            &names,
            &sha,
        );
        assert!(
            call.headers[6]
                .1
                .ends_with(&sign_v3("testsecret", &string_to_sign_v3(&canonical)))
        );
    }

    #[test]
    fn nonces_are_32_hex_and_fresh() {
        let a = nonce();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, nonce());
    }

    #[test]
    fn list_parameters_are_one_based() {
        let mut p = Vec::new();
        push_list(
            &mut p,
            "TaskStatuses",
            &["Waiting".into(), "Processing".into()],
        );
        assert_eq!(
            p,
            owned(&[
                ("TaskStatuses.1", "Waiting"),
                ("TaskStatuses.2", "Processing")
            ])
        );
    }
}
