//! The verifying side of the two request-signing schemes: the `Authorization` header parsed,
//! and received signatures compared in constant time through [`Mac::verify_slice`]. The strings
//! to sign and the signatures themselves are the client's ([`cloudphone_client::signature`]),
//! so a server rebuilds exactly what a client signed. Nothing here reads a request or a clock;
//! [`crate::auth`] does that.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cloudphone_core::error::ApiError;
use hmac::Mac;

pub use cloudphone_client::protocol::ACS3_HMAC_SHA256;
pub use cloudphone_client::signature::{
    canonical_query_v3, canonical_request_v3, canonical_request_v3_at, pct, sha256_hex, sign_v1,
    sign_v3, string_to_sign_v1, string_to_sign_v3,
};
use cloudphone_client::signature::{mac_v1, mac_v3};

/// Whether `signature_hex` (either case) is the ACS3 signature of `string_to_sign`.
pub fn verify_v3(secret: &str, string_to_sign: &str, signature_hex: &str) -> bool {
    let Ok(received) = hex::decode(signature_hex) else {
        return false;
    };
    mac_v3(secret, string_to_sign)
        .verify_slice(&received)
        .is_ok()
}

/// The parts of an `Authorization: ACS3-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acs3Auth {
    pub access_key_id: String,
    /// Lower-cased, in the order the client listed them (the order it signed them in).
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=<a;b>,Signature=<hex>`.
///
/// Another `ACS3-` algorithm (the SDK can also sign with SM3 or RSA) is
/// `UnsupportedSignatureMethod`; anything else malformed is `IncompleteSignature`.
pub fn parse_acs3_authorization(header: &str) -> Result<Acs3Auth, ApiError> {
    let incomplete = |why: &str| ApiError::IncompleteSignature(why.to_string());
    let header = header.trim();
    let (algorithm, rest) = header
        .split_once(' ')
        .ok_or_else(|| incomplete("the Authorization header has no credentials"))?;
    if algorithm != ACS3_HMAC_SHA256 {
        return Err(if algorithm.starts_with("ACS3-") {
            ApiError::UnsupportedSignatureMethod(algorithm.to_string())
        } else {
            incomplete("the Authorization header does not start with ACS3-HMAC-SHA256")
        });
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| incomplete("an Authorization field has no value"))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(incomplete("the Authorization header has an unknown field")),
        };
        if value.is_empty() {
            return Err(incomplete("an Authorization field is empty"));
        }
        if slot.replace(value).is_some() {
            return Err(incomplete("an Authorization field is given twice"));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete(
            "the Authorization header needs Credential, SignedHeaders and Signature",
        ));
    };
    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(incomplete("SignedHeaders lists an empty header name"));
    }
    Ok(Acs3Auth {
        access_key_id: credential.to_string(),
        signed_headers,
        signature: signature.to_string(),
    })
}

/// Whether `signature_b64` is the legacy signature of `string_to_sign`.
pub fn verify_v1(secret: &str, string_to_sign: &str, signature_b64: &str) -> bool {
    let Ok(received) = BASE64.decode(signature_b64) else {
        return false;
    };
    mac_v1(secret, string_to_sign)
        .verify_slice(&received)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudphone_client::vectors::*;

    #[test]
    fn vector_a_canonical_request_and_signature() {
        let creq = canonical_request_v3(
            "POST",
            &vector_a_query(),
            &vector_a_headers(),
            SIGNED_A,
            EMPTY_SHA256,
        );
        assert_eq!(creq, CANONICAL_A);
        let sts = string_to_sign_v3(&creq);
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n14dc701cec8d6104fc58108eb06f8b218359ff7b2710961f5d06f475efdaffb0"
        );
        assert_eq!(sign_v3("testsecret", &sts), SIG_A);
        assert!(verify_v3("testsecret", &sts, SIG_A));
        assert!(verify_v3("testsecret", &sts, &SIG_A.to_ascii_uppercase()));
    }

    #[test]
    fn vector_a_negative() {
        let sts = string_to_sign_v3(CANONICAL_A);
        assert!(!verify_v3("testsecreT", &sts, SIG_A));
        let mut wrong = SIG_A.to_string();
        wrong.replace_range(0..1, "7");
        assert!(!verify_v3("testsecret", &sts, &wrong));
        assert!(!verify_v3("testsecret", &sts, &SIG_A[..62]));
        assert!(!verify_v3("testsecret", &sts, "not hex"));
        assert!(!verify_v3("testsecret", &sts, ""));
        let mut query = vector_a_query();
        query[1].1 = "11";
        let creq =
            canonical_request_v3("POST", &query, &vector_a_headers(), SIGNED_A, EMPTY_SHA256);
        assert!(!verify_v3("testsecret", &string_to_sign_v3(&creq), SIG_A));
        let creq = canonical_request_v3(
            "GET",
            &vector_a_query(),
            &vector_a_headers(),
            SIGNED_A,
            EMPTY_SHA256,
        );
        assert!(!verify_v3("testsecret", &string_to_sign_v3(&creq), SIG_A));
    }

    #[test]
    fn vector_b_form_body() {
        let hash = sha256_hex(BODY_B);
        let hdrs = vector_b_headers(&hash);
        let auth = parse_acs3_authorization(&format!(
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;content-type;host;\
             user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;\
             x-acs-date;x-acs-signature-nonce;x-acs-version,Signature={SIG_B}"
        ))
        .unwrap();
        let names: Vec<&str> = auth.signed_headers.iter().map(String::as_str).collect();
        let creq = canonical_request_v3::<&str, &str>("POST", &[], &hdrs, &names, &hash);
        assert!(creq.starts_with("POST\n/\n\naccept:"));
        let sts = string_to_sign_v3(&creq);
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\nf42178082aeceb50e79c5ede8eefeab24685d2ddb1011c5e4f1bc5b8d9e3c7a3"
        );
        assert_eq!(sign_v3("testsecret", &sts), SIG_B);
        assert!(verify_v3("testsecret", &sts, &auth.signature));
    }

    #[test]
    fn vector_c_legacy() {
        let sts = string_to_sign_v1("POST", &vector_c_params());
        assert_eq!(
            sts,
            "POST&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeTasks%26Format%3Djson%26InvokeId%3Dinv-1%26MaxResults%3D10%26Param%3Da%2520b%252Ac~d%252F%25E4%25B8%25AD%26ResourceIds.1%3Dacp-1%26ResourceIds.2%3Dacp-2%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D00112233445566778899aabbccddeeff%26SignatureVersion%3D1.0%26TaskStatuses.1%3DFinished%26TaskStatuses.2%3DFailed%26Timestamp%3D2025-01-01T00%253A00%253A00Z%26Version%3D2023-09-30"
        );
        assert_eq!(sign_v1("testsecret", &sts), SIG_C);
        assert!(verify_v1("testsecret", &sts, SIG_C));
    }

    #[test]
    fn vector_c_negative() {
        let sts = string_to_sign_v1("POST", &vector_c_params());
        assert!(!verify_v1("testsecrex", &sts, SIG_C));
        assert!(!verify_v1(
            "testsecret",
            &sts,
            "2UVUbBxZAxSWrbDhg3VHaJL8o6J="
        ));
        assert!(!verify_v1("testsecret", &sts, "not base64!"));
        assert!(!verify_v1("testsecret", &sts, ""));
        let get = string_to_sign_v1("GET", &vector_c_params());
        assert!(get.starts_with("GET&%2F&AccessKeyId"));
        assert!(!verify_v1("testsecret", &get, SIG_C));
        let mut params = vector_c_params();
        params[0].1 = "inv-2";
        assert!(!verify_v1(
            "testsecret",
            &string_to_sign_v1("POST", &params),
            SIG_C
        ));
    }

    #[test]
    fn authorization_header_parses() {
        let a = parse_acs3_authorization(&format!(
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;X-Acs-Date,Signature={SIG_A}"
        ))
        .unwrap();
        assert_eq!(a.access_key_id, "testid");
        assert_eq!(a.signed_headers, ["host", "x-acs-date"]);
        assert_eq!(a.signature, SIG_A);
        // Spaces after the commas, as some hand-written clients send.
        let b = parse_acs3_authorization(
            "ACS3-HMAC-SHA256 Credential=k, SignedHeaders=host, Signature=00",
        )
        .unwrap();
        assert_eq!(b.access_key_id, "k");
    }

    #[test]
    fn authorization_header_rejects() {
        for alg in ["ACS3-HMAC-SM3", "ACS3-RSA-SHA256"] {
            assert_eq!(
                parse_acs3_authorization(&format!(
                    "{alg} Credential=k,SignedHeaders=host,Signature=00"
                )),
                Err(ApiError::UnsupportedSignatureMethod(alg.into()))
            );
        }
        for bad in [
            "",
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA256 ",
            "Bearer abc",
            "acs3-hmac-sha256 Credential=k,SignedHeaders=host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host",
            "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host;;date,Signature=00",
            "ACS3-HMAC-SHA256 Credential=k,Credential=j,SignedHeaders=host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host,Signature=00,Extra=1",
            "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host,Signature",
        ] {
            assert!(
                matches!(
                    parse_acs3_authorization(bad),
                    Err(ApiError::IncompleteSignature(_))
                ),
                "{bad:?}"
            );
        }
    }

    /// The client's signers, verified by what the server runs on every request.
    mod client_signers {
        use axum::http::{HeaderMap, HeaderName, HeaderValue};
        use cloudphone_client::signer::RPC;
        use cloudphone_client::{
            Credentials, Request, SignedCall, params, sign, sign_legacy, sign_request,
        };

        use crate::auth::{REQUIRED_SIGNED_HEADERS, Target, parse_signed, parse_signed_for};
        use crate::request::RawRequest;

        const SECRET: &str = "testsecret";

        fn creds() -> Credentials {
            Credentials {
                key_id: "testid".into(),
                secret: SECRET.into(),
            }
        }

        /// The request a server decodes from `call` sent as `method` with `body`.
        fn received(method: &str, call: &SignedCall, body: &[u8]) -> RawRequest {
            let mut headers = HeaderMap::new();
            for (name, value) in &call.headers {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            let query = call.target.split_once('?').map(|(_, q)| q);
            RawRequest::from_parts(method, &headers, query, body.to_vec(), 1000).unwrap()
        }

        fn call_params() -> Vec<(String, String)> {
            params(&[
                ("InvokeId", "inv-1"),
                ("Param", "a b*c~d/中+=&"),
                ("ResourceIds.10", "acp-10"),
                ("ResourceIds.2", "acp-2"),
            ])
        }

        #[test]
        fn an_acs3_call_verifies() {
            let call = sign(
                &creds(),
                "127.0.0.1:9",
                "DescribeTasks",
                &call_params(),
                "2025-01-01T00:00:00Z",
                "0123456789abcdef0123456789abcdef",
            );
            let signed = parse_signed(&received("POST", &call, b"")).unwrap();
            assert_eq!(signed.key_id, "testid");
            assert_eq!(signed.nonce, "0123456789abcdef0123456789abcdef");
            assert_eq!(signed.date_ms, 1_735_689_600_000);
            signed.verify(SECRET).unwrap();
            assert!(signed.verify("other").is_err());
            let (_, authorization) = call.headers.last().unwrap();
            let auth = super::parse_acs3_authorization(authorization).unwrap();
            for required in REQUIRED_SIGNED_HEADERS {
                assert!(
                    auth.signed_headers.iter().any(|h| h == required),
                    "{required}"
                );
            }
            // A parameter changed on the way does not verify.
            let mut tampered = call.clone();
            tampered.target = tampered.target.replace("inv-1", "inv-2");
            let signed = parse_signed(&received("POST", &tampered, b"")).unwrap();
            assert!(signed.verify(SECRET).is_err());
        }

        #[test]
        fn a_legacy_call_verifies() {
            let call = sign_legacy(
                &creds(),
                "127.0.0.1:9",
                "DescribeTasks",
                &call_params(),
                "2025-01-01T00:00:00Z",
                "00112233445566778899aabbccddeeff",
            );
            let signed = parse_signed(&received("POST", &call, b"")).unwrap();
            assert_eq!(signed.nonce, "00112233445566778899aabbccddeeff");
            assert_eq!(signed.date_ms, 1_735_689_600_000);
            assert!(matches!(signed.proof, crate::auth::Proof::Legacy { .. }));
            signed.verify(SECRET).unwrap();
            assert!(signed.verify("other").is_err());
        }

        #[test]
        fn an_object_upload_and_the_watch_stream_verify() {
            let body = b"the object";
            let sha = super::sha256_hex(body);
            let path = "/files/my-bucket/a%20b/c.txt";
            let put = Request {
                method: "PUT",
                path,
                accept: None,
                body_sha256: &sha,
            };
            let call = sign_request(
                &creds(),
                "h:1",
                &put,
                "PutObject",
                &[],
                "2025-01-01T00:00:00Z",
                "n1",
            );
            let target = Target {
                path,
                streamed_body: false,
            };
            let signed = parse_signed_for(&received("PUT", &call, body), target).unwrap();
            signed.verify(SECRET).unwrap();
            let other = parse_signed_for(&received("PUT", &call, b"another"), target).unwrap();
            assert!(other.verify(SECRET).is_err());

            let watch = Request {
                method: "GET",
                path: cloudphone_client::protocol::WATCH_PATH,
                accept: Some("text/event-stream"),
                ..RPC
            };
            let query = params(&[("TaskIds.1", "t-1")]);
            let call = sign_request(
                &creds(),
                "h:1",
                &watch,
                cloudphone_client::protocol::WATCH_ACTION,
                &query,
                "2025-01-01T00:00:00Z",
                "n2",
            );
            let target = Target {
                path: cloudphone_client::protocol::WATCH_PATH,
                streamed_body: false,
            };
            let signed = parse_signed_for(&received("GET", &call, b""), target).unwrap();
            signed.verify(SECRET).unwrap();
        }

        #[test]
        fn the_protocol_constants_are_the_servers() {
            assert_eq!(cloudphone_client::protocol::WATCH_PATH, crate::watch::PATH);
            assert_eq!(
                cloudphone_client::protocol::WATCH_ACTION,
                crate::watch::ACTION
            );
            assert_eq!(cloudphone_client::VERSION, crate::server::VERSION);
        }
    }
}
