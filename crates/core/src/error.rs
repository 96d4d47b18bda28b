//! The vendor error codes an API call can fail with. Each variant knows its `Code` and HTTP
//! status; the message is for people. Internal causes are logged where they happen and reach the
//! client only as `InternalError`.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ApiError {
    #[error("The parameter {0} is required.")]
    MissingParameter(String),
    #[error("The parameter {name} is invalid: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// A parameter name outside `[A-Za-z0-9._-]` (shown escaped and cut short): no vendor name
    /// needs another character, and refusing them keeps two parameter sets from ever sharing
    /// the canonical query an ACS3 signature covers (its names are not encoded).
    #[error(
        "The parameter name {0} is invalid: a name may hold only A-Z, a-z, 0-9, '.', '_' and '-'."
    )]
    InvalidParameterName(String),
    #[error("The {name} {id} does not exist.")]
    NotFound { name: String, id: String },
    #[error("The {what} is in status {status}, which does not allow this operation.")]
    IncorrectStatus { what: String, status: String },
    /// A name that must be unique (in its account) is taken: `Invalid<Name>.Duplicate`.
    #[error("The {name} {value} is already in use.")]
    Duplicate { name: String, value: String },
    /// StartInstanceAdb on a node started without an ADB gateway (`--adb-ports`).
    #[error(
        "This server has no ADB gateway: its operator starts it with --adb-ports (and --adb-listen, --adb-public-host) to open ADB endpoints."
    )]
    AdbGatewayNotConfigured,
    /// Every port of the gateway's range is some phone's.
    #[error(
        "Every port of the ADB gateway ({low}-{high}) is taken: stop ADB on phones that do not need it, or ask the operator for a larger range."
    )]
    AdbPortsExhausted { low: u16, high: u16 },
    #[error("The request signature does not conform to the standard: {0}")]
    IncompleteSignature(String),
    #[error("The signature method {0} is not supported.")]
    UnsupportedSignatureMethod(String),
    /// Also the answer for a key id that does not exist or is disabled: one answer for both,
    /// so that nobody without a key's secret can tell whether the key exists.
    #[error(
        "The request signature does not match the signature computed by the server, or the access key id is unknown or disabled."
    )]
    SignatureDoesNotMatch,
    #[error("The request time is not within 15 minutes of the server's time.")]
    TimestampExpired,
    #[error("The signature nonce has been used already.")]
    NonceUsed,
    #[error("The action {0} does not exist.")]
    ActionNotFound(String),
    #[error("The version {0} is not supported.")]
    InvalidVersion(String),
    #[error("The request is larger than {0} bytes.")]
    RequestTooLarge(usize),
    #[error("The request has more than {0} parameters.")]
    TooManyParameters(usize),
    #[error("The request URI is longer than {0} bytes.")]
    UriTooLong(usize),
    #[error("Request was denied due to user flow control: retry after {retry_after_ms} ms.")]
    Throttled { retry_after_ms: u64 },
    /// A watch stream over the node's cap: of its access key (`per_key`), or of all.
    #[error(
        "{} {limit} watch streams open, the most allowed: close one or try again later.",
        if *per_key { "This access key has" } else { "This node serves" }
    )]
    TooManyWatchStreams { limit: usize, per_key: bool },
    #[error(
        "The account may have at most {limit} {what}: it has {used} and asked for {asked} more."
    )]
    QuotaExceeded {
        what: String,
        limit: u64,
        used: u64,
        asked: u64,
    },
    /// The farm has no room for the phones asked (placement, docs/design.md §10): nothing was
    /// created. ECS and ECI answer this code and status for the same situation.
    #[error(
        "The requested resource is sold out: the farm has room for {fits} more phones of {spec}, {asked} were asked. Nothing was created."
    )]
    NoStock { spec: String, asked: u64, fits: u64 },
    #[error("The ClientToken was used before with other parameters.")]
    IdempotentParameterMismatch,
    #[error(
        "The call first made with this ClientToken is still being processed. Please try again later."
    )]
    IdempotentProcessing,
    /// `DryRun=true`: everything was checked and nothing was created. The value is the report
    /// of what the call would have done, sent in the body as `DryRunReport`.
    #[error("Request validation has been passed with DryRun flag set.")]
    DryRunOperation(serde_json::Value),
    #[error("An internal error occurred. Please try again later.")]
    Internal,
    #[error(
        "The service is temporarily unavailable (shutting down, overloaded, or its database unreachable). Please try again later."
    )]
    Unavailable,
}

impl ApiError {
    pub fn missing(name: impl Into<String>) -> ApiError {
        ApiError::MissingParameter(name.into())
    }

    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(name: impl Into<String>, id: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            name: name.into(),
            id: id.into(),
        }
    }

    /// The vendor-style `Code` of the response body.
    pub fn code(&self) -> String {
        match self {
            ApiError::MissingParameter(name) => format!("MissingParameter.{name}"),
            ApiError::InvalidParameter { name, .. } => format!("InvalidParameter.{name}"),
            ApiError::InvalidParameterName(_) => "InvalidParameter".into(),
            ApiError::NotFound { name, .. } => format!("Invalid{name}.NotFound"),
            ApiError::IncorrectStatus { .. } => "IncorrectStatus".into(),
            ApiError::Duplicate { name, .. } => format!("Invalid{name}.Duplicate"),
            ApiError::AdbGatewayNotConfigured => "OperationDenied.AdbGatewayNotConfigured".into(),
            ApiError::AdbPortsExhausted { .. } => "InsufficientResource.AdbPorts".into(),
            ApiError::IncompleteSignature(_) => "IncompleteSignature".into(),
            ApiError::UnsupportedSignatureMethod(_) => "InvalidSignatureMethod".into(),
            ApiError::SignatureDoesNotMatch => "SignatureDoesNotMatch".into(),
            ApiError::TimestampExpired => "InvalidTimeStamp.Expired".into(),
            ApiError::NonceUsed => "SignatureNonceUsed".into(),
            ApiError::ActionNotFound(_) => "InvalidAction.NotFound".into(),
            ApiError::InvalidVersion(_) => "InvalidVersion".into(),
            ApiError::RequestTooLarge(_) => "RequestEntityTooLarge".into(),
            ApiError::TooManyParameters(_) => "InvalidParameter.TooMany".into(),
            ApiError::UriTooLong(_) => "RequestURITooLong".into(),
            ApiError::Throttled { .. } => "Throttling.User".into(),
            ApiError::TooManyWatchStreams { .. } => "Throttling.WatchStreams".into(),
            ApiError::QuotaExceeded { what, .. } => format!("QuotaExceeded.{}", capitalized(what)),
            ApiError::NoStock { .. } => "OperationDenied.NoStock".into(),
            ApiError::IdempotentParameterMismatch => "IdempotentParameterMismatch".into(),
            ApiError::IdempotentProcessing => "IdempotentProcessing".into(),
            ApiError::DryRunOperation(_) => "DryRunOperation".into(),
            ApiError::Internal => "InternalError".into(),
            ApiError::Unavailable => "ServiceUnavailable".into(),
        }
    }

    /// How long a throttled caller should wait, for the `x-acs-retry-after` header.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ApiError::Throttled { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// Fields the error body carries beside the usual ones (the dry run's report).
    pub fn extra(&self) -> Option<(&'static str, &serde_json::Value)> {
        match self {
            ApiError::DryRunOperation(report) => Some(("DryRunReport", report)),
            _ => None,
        }
    }

    /// The HTTP status; always 400 or above, so that every SDK raises it as an error.
    pub fn http_status(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::ActionNotFound(_) => 404,
            ApiError::IncorrectStatus { .. }
            | ApiError::IdempotentProcessing
            | ApiError::Duplicate { .. }
            | ApiError::AdbPortsExhausted { .. } => 409,
            ApiError::SignatureDoesNotMatch
            | ApiError::AdbGatewayNotConfigured
            | ApiError::NoStock { .. } => 403,
            ApiError::RequestTooLarge(_) => 413,
            ApiError::UriTooLong(_) => 414,
            ApiError::TooManyWatchStreams { .. } => 429,
            ApiError::Internal => 500,
            ApiError::Unavailable => 503,
            _ => 400,
        }
    }
}

/// `what` as a code's last part: each word capitalized, spaces dropped ("key pairs":
/// "KeyPairs").
fn capitalized(s: &str) -> String {
    s.split_whitespace()
        .flat_map(|word| {
            let mut chars = word.chars();
            let first = chars.next().into_iter().flat_map(char::to_uppercase);
            first.chain(chars)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_the_parameter() {
        assert_eq!(
            ApiError::missing("ImageId").code(),
            "MissingParameter.ImageId"
        );
        let e = ApiError::invalid("TaskType", "unknown value");
        assert_eq!(e.code(), "InvalidParameter.TaskType");
        assert_eq!(e.http_status(), 400);
        let e = ApiError::not_found("AndroidInstanceIds", "acp-x");
        assert_eq!(e.code(), "InvalidAndroidInstanceIds.NotFound");
        assert_eq!(e.http_status(), 404);
    }

    #[test]
    fn every_error_is_at_least_400() {
        for e in [
            ApiError::SignatureDoesNotMatch,
            ApiError::TimestampExpired,
            ApiError::NonceUsed,
            ApiError::Internal,
            ApiError::RequestTooLarge(1),
        ] {
            assert!(e.http_status() >= 400);
        }
    }

    /// The status an SDK or a proxy sees for each error: a client that retries on 5xx, or
    /// treats 404 as "gone", depends on it.
    #[test]
    fn each_error_has_its_http_status() {
        let cases = [
            (ApiError::missing("ImageId"), 400),
            (ApiError::invalid("TaskType", "unknown value"), 400),
            (ApiError::InvalidParameterName("\"a=b\"".into()), 400),
            (ApiError::not_found("AndroidInstanceIds", "acp-x"), 404),
            (ApiError::ActionNotFound("Nope".into()), 404),
            (
                ApiError::IncorrectStatus {
                    what: "instance".into(),
                    status: "DELETED".into(),
                },
                409,
            ),
            (ApiError::IdempotentProcessing, 409),
            (
                ApiError::Duplicate {
                    name: "KeyPairName".into(),
                    value: "ci".into(),
                },
                409,
            ),
            (ApiError::AdbGatewayNotConfigured, 403),
            (
                ApiError::AdbPortsExhausted {
                    low: 20000,
                    high: 20001,
                },
                409,
            ),
            (ApiError::IdempotentParameterMismatch, 400),
            (ApiError::SignatureDoesNotMatch, 403),
            (ApiError::IncompleteSignature("no date".into()), 400),
            (ApiError::TimestampExpired, 400),
            (ApiError::NonceUsed, 400),
            (ApiError::RequestTooLarge(1 << 20), 413),
            (ApiError::UriTooLong(8192), 414),
            (ApiError::TooManyParameters(1000), 400),
            (
                ApiError::Throttled {
                    retry_after_ms: 250,
                },
                400,
            ),
            (
                ApiError::TooManyWatchStreams {
                    limit: 32,
                    per_key: true,
                },
                429,
            ),
            (ApiError::DryRunOperation(serde_json::json!({})), 400),
            (ApiError::Internal, 500),
            (ApiError::Unavailable, 503),
        ];
        for (e, status) in cases {
            assert_eq!(e.http_status(), status, "{}", e.code());
        }
    }

    #[test]
    fn adb_codes_are_vendor_shaped() {
        let dup = ApiError::Duplicate {
            name: "KeyPairName".into(),
            value: "ci".into(),
        };
        assert_eq!(dup.code(), "InvalidKeyPairName.Duplicate");
        assert_eq!(
            ApiError::AdbGatewayNotConfigured.code(),
            "OperationDenied.AdbGatewayNotConfigured"
        );
        let full = ApiError::AdbPortsExhausted {
            low: 20000,
            high: 20001,
        };
        assert_eq!(full.code(), "InsufficientResource.AdbPorts");
        assert!(full.to_string().contains("20000-20001"));
    }

    #[test]
    fn a_throttled_caller_is_told_how_long_to_wait() {
        let e = ApiError::Throttled {
            retry_after_ms: 1500,
        };
        assert_eq!(e.code(), "Throttling.User");
        assert_eq!(e.retry_after_ms(), Some(1500));
        // Only throttling sends x-acs-retry-after: the SDK treats any error carrying it as a
        // ThrottlingException.
        for other in [
            ApiError::Internal,
            ApiError::Unavailable,
            ApiError::IdempotentProcessing,
        ] {
            assert_eq!(other.retry_after_ms(), None, "{}", other.code());
        }
    }

    #[test]
    fn a_dry_run_carries_its_report_in_the_body() {
        let report = serde_json::json!({ "RunCount": 2, "SkipCount": 1 });
        let e = ApiError::DryRunOperation(report.clone());
        assert_eq!(e.code(), "DryRunOperation");
        assert_eq!(e.extra(), Some(("DryRunReport", &report)));
        assert_eq!(ApiError::Internal.extra(), None);
        assert_eq!(ApiError::missing("DryRun").extra(), None);
    }

    #[test]
    fn a_quota_code_names_the_resource_capitalized() {
        let quota = |what: &str| ApiError::QuotaExceeded {
            what: what.into(),
            limit: 10,
            used: 9,
            asked: 2,
        };
        assert_eq!(quota("instances").code(), "QuotaExceeded.Instances");
        assert_eq!(quota("webhooks").code(), "QuotaExceeded.Webhooks");
        assert_eq!(quota("key pairs").code(), "QuotaExceeded.KeyPairs");
        assert_eq!(
            quota("instances").to_string(),
            "The account may have at most 10 instances: it has 9 and asked for 2 more."
        );
    }

    #[test]
    fn a_farm_without_room_denies_with_the_ecs_code() {
        let e = ApiError::NoStock {
            spec: "acp.basic.small".into(),
            asked: 12,
            fits: 7,
        };
        assert_eq!(
            (e.code().as_str(), e.http_status()),
            ("OperationDenied.NoStock", 403)
        );
        assert_eq!(
            e.to_string(),
            "The requested resource is sold out: the farm has room for 7 more phones of \
             acp.basic.small, 12 were asked. Nothing was created."
        );
    }
}
