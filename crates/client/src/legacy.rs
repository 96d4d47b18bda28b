//! Calls signed with the legacy scheme (HMAC-SHA1, `Signature=` in the query), as the SDK sends
//! them with `signature_algorithm='v2'`: the protocol's parameters (`Action`, `Format`,
//! `Version`, `Timestamp`, `SignatureNonce`, `SignatureMethod`, `SignatureVersion`,
//! `AccessKeyId`) beside the call's own, all in the query of a `POST /`, and no `Authorization`.

use crate::protocol::{HMAC_SHA1, SIGNATURE_VERSION_V1, VERSION};
use crate::signature::{sign_v1, string_to_sign_v1};
use crate::signer::{Credentials, SignedCall, target};

/// Signs `action` with `params` for the server at `host`, at `timestamp`
/// (`YYYY-MM-DDTHH:MM:SSZ`) with `nonce`. The headers are those the SDK sends (unsigned).
pub fn sign_legacy(
    creds: &Credentials,
    host: &str,
    action: &str,
    params: &[(String, String)],
    timestamp: &str,
    nonce: &str,
) -> SignedCall {
    let protocol = |k: &str, v: &str| (k.to_string(), v.to_string());
    // The SDK's order on the wire: the protocol's leading parameters, the call's, then the
    // signature's own. Only the signature's sorting matters to a server.
    let mut all = vec![
        protocol("Action", action),
        protocol("Format", "json"),
        protocol("Version", VERSION),
        protocol("Timestamp", timestamp),
        protocol("SignatureNonce", nonce),
    ];
    all.extend_from_slice(params);
    all.extend([
        protocol("SignatureMethod", HMAC_SHA1),
        protocol("SignatureVersion", SIGNATURE_VERSION_V1),
        protocol("AccessKeyId", &creds.key_id),
    ]);
    let signature = sign_v1(&creds.secret, &string_to_sign_v1("POST", &all));
    all.push(protocol("Signature", &signature));
    SignedCall {
        target: target("/", &all),
        headers: vec![
            ("host".into(), host.to_string()),
            ("x-acs-action".into(), action.to_string()),
            ("x-acs-version".into(), VERSION.into()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{SIG_C, vector_a_query};

    #[test]
    fn the_contract_vector_c() {
        let creds = Credentials {
            key_id: "testid".into(),
            secret: "testsecret".into(),
        };
        let p: Vec<(String, String)> = vector_a_query()
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let call = sign_legacy(
            &creds,
            "127.0.0.1:18096",
            "DescribeTasks",
            &p,
            "2025-01-01T00:00:00Z",
            "00112233445566778899aabbccddeeff",
        );
        // The vector's request line, with `%20` for the SDK's `+` (both decode to a space).
        assert_eq!(
            call.target,
            "/?Action=DescribeTasks&Format=json&Version=2023-09-30\
             &Timestamp=2025-01-01T00%3A00%3A00Z&SignatureNonce=00112233445566778899aabbccddeeff\
             &InvokeId=inv-1&MaxResults=10&Param=a%20b%2Ac~d%2F%E4%B8%AD&ResourceIds.1=acp-1\
             &ResourceIds.2=acp-2&TaskStatuses.1=Finished&TaskStatuses.2=Failed\
             &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&AccessKeyId=testid\
             &Signature=2UVUbBxZAxSWrbDhg3VHaJL8o6I%3D"
        );
        assert!(call.target.ends_with(&crate::signature::pct(SIG_C)));
        assert!(call.headers.iter().all(|(n, _)| n != "authorization"));
    }
}
