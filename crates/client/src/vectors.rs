//! The API contract's signature test vectors (`api-contract.md`, vectors A to C): the requests
//! the official SDK signs and the signatures it sends, for the tests of this crate's signers and
//! of the server's verifier, so both check against one copy.

pub use crate::protocol::EMPTY_SHA256;

/// The SDK's `user-agent`, signed in vector A.
pub const UA: &str = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2";

/// Vector A's query: DescribeTasks with list parameters and text to encode.
pub fn vector_a_query() -> Vec<(&'static str, &'static str)> {
    vec![
        ("InvokeId", "inv-1"),
        ("MaxResults", "10"),
        ("Param", "a b*c~d/中"),
        ("ResourceIds.1", "acp-1"),
        ("ResourceIds.2", "acp-2"),
        ("TaskStatuses.1", "Finished"),
        ("TaskStatuses.2", "Failed"),
    ]
}

/// Header pairs as owned strings.
pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Vector A's headers, in the order the SDK sends them.
pub fn vector_a_headers() -> Vec<(String, String)> {
    headers(&[
        ("host", "127.0.0.1:18096"),
        ("x-acs-version", "2023-09-30"),
        ("x-acs-action", "DescribeTasks"),
        ("user-agent", UA),
        ("x-acs-date", "2025-01-01T00:00:00Z"),
        ("x-acs-signature-nonce", "0123456789abcdef0123456789abcdef"),
        ("accept", "application/json"),
        ("x-acs-content-sha256", EMPTY_SHA256),
        ("x-acs-credentials-provider", "static_ak"),
    ])
}

/// Vector A's signed headers.
pub const SIGNED_A: &[&str] = &[
    "accept",
    "host",
    "user-agent",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-credentials-provider",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
];

/// Vector A's canonical request.
pub const CANONICAL_A: &str = "POST
/
InvokeId=inv-1&MaxResults=10&Param=a%20b%2Ac~d%2F%E4%B8%AD&ResourceIds.1=acp-1&ResourceIds.2=acp-2&TaskStatuses.1=Finished&TaskStatuses.2=Failed
accept:application/json
host:127.0.0.1:18096
user-agent:AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-action:DescribeTasks
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider:static_ak
x-acs-date:2025-01-01T00:00:00Z
x-acs-signature-nonce:0123456789abcdef0123456789abcdef
x-acs-version:2023-09-30

accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Vector B's form body (UpdateInstanceGroupImage, parameters in the body).
pub const BODY_B: &[u8] = b"ImageId=imgc-1&InstanceGroupIds.1=ag-1&InstanceGroupIds.2=ag-2";

/// Vector B's headers, in the order the SDK sends them; `body_sha256` is the body's hash.
pub fn vector_b_headers(body_sha256: &str) -> Vec<(String, String)> {
    headers(&[
        ("host", "127.0.0.1:18096"),
        ("x-acs-version", "2023-09-30"),
        ("x-acs-action", "UpdateInstanceGroupImage"),
        ("user-agent", UA),
        ("x-acs-date", "2025-01-01T00:00:00Z"),
        ("x-acs-signature-nonce", "fedcba9876543210fedcba9876543210"),
        ("accept", "application/json"),
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-acs-content-sha256", body_sha256),
        ("x-acs-credentials-provider", "static_ak"),
    ])
}

/// Vector B's signed headers.
pub const SIGNED_B: &[&str] = &[
    "accept",
    "content-type",
    "host",
    "user-agent",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-credentials-provider",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
];

/// Vector C's parameters (the legacy HMAC-SHA1 scheme): vector A's and the common ones.
pub fn vector_c_params() -> Vec<(&'static str, &'static str)> {
    let mut p = vector_a_query();
    p.extend([
        ("Action", "DescribeTasks"),
        ("Format", "json"),
        ("Version", "2023-09-30"),
        ("Timestamp", "2025-01-01T00:00:00Z"),
        ("SignatureNonce", "00112233445566778899aabbccddeeff"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("AccessKeyId", "testid"),
    ]);
    p
}

/// The signatures of vectors A and B (ACS3-HMAC-SHA256, secret `testsecret`) and C (legacy
/// HMAC-SHA1).
pub const SIG_A: &str = "61d20b2eadda13f12231787e6cbbafbd596ab555914c6be3ec7f1018f39070b2";
pub const SIG_B: &str = "96e5dac9a49733ccdb153a3387b39603b3ed399355690054ec154b99b19460e3";
pub const SIG_C: &str = "2UVUbBxZAxSWrbDhg3VHaJL8o6I=";
