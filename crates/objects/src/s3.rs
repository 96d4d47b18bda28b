//! Objects in an S3-compatible service (docs/design.md §7): the client, the check that the
//! bucket answers, the folder/object conflict rule S3 does not have, and presigned downloads.
//!
//! object_store's S3 client runs over a reqwest client the caller builds ([`S3Settings::client`]),
//! never over one object_store would build itself: the program's TLS setup (the ring provider,
//! an extra CA file) then applies, and no second TLS stack is linked.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{ClientOptions, HttpClient, HttpConnector};
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::signer::{Method, Signer};
use object_store::{GetOptions, ObjectStore, RetryConfig};

use crate::{ObjectError, OssPath};

/// Where the objects of a node live in an S3-compatible service, and how to reach it.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// A folder of the bucket holding everything (no leading or trailing `/`), if any.
    pub prefix: Option<String>,
    /// The service's URL (`http://127.0.0.1:9000`); AWS's own endpoint for `region` if none.
    pub endpoint: Option<String>,
    pub region: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Valid download links answer with a redirect to a presigned URL of the service.
    pub presign: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The HTTP client every request goes through.
    pub client: reqwest::Client,
}

impl std::fmt::Debug for S3Settings {
    // The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("presign", &self.presign)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// `s3://bucket/prefix`, for messages (no endpoint, no credentials).
    pub fn display_url(&self) -> String {
        match &self.prefix {
            Some(prefix) => format!("s3://{}/{prefix}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }
}

/// Hands object_store the caller's client, whatever options it asks for (its timeouts and TLS
/// settings are the caller's).
#[derive(Debug)]
struct FixedClient(reqwest::Client);

impl HttpConnector for FixedClient {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}

/// The S3 side of an [`crate::Objects`]: the store under the prefix, and the client itself for
/// presigning (which needs the full key).
pub(crate) struct S3 {
    pub(crate) store: Arc<dyn ObjectStore>,
    signer: Arc<AmazonS3>,
    prefix: Option<StorePath>,
    presign: bool,
}

/// Connects to the service and checks that the bucket answers a listing, so that a wrong
/// endpoint, bucket or key fails the node's start with a clear message, not its first upload.
pub(crate) async fn connect(settings: &S3Settings) -> Result<S3, ObjectError> {
    let failed = |e: &dyn std::fmt::Display| {
        ObjectError::Io(format!("the object store {}: {e}", settings.display_url()))
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_access_key_id(&settings.access_key_id)
        .with_secret_access_key(&settings.secret_access_key)
        .with_virtual_hosted_style_request(!settings.path_style)
        .with_http_connector(FixedClient(settings.client.clone()))
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        });
    if let Some(endpoint) = &settings.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let signer = Arc::new(builder.build().map_err(|e| failed(&e))?);
    let prefix = settings.prefix.as_deref().map(StorePath::from);
    let store: Arc<dyn ObjectStore> = match &prefix {
        Some(prefix) => Arc::new(PrefixStore::new(signer.clone(), prefix.clone())),
        None => signer.clone(),
    };
    // One key is enough: the listing proves the bucket, the credentials and the endpoint.
    if let Some(Err(e)) = store.list(None).next().await {
        return Err(failed(&format_args!(
            "listing the bucket failed (is the bucket there, and may these credentials \
             list it?): {e}"
        )));
    }
    Ok(S3 {
        store,
        signer,
        prefix,
        presign: settings.presign,
    })
}

impl S3 {
    /// Why `data` (the object of `path`) cannot be written, if it cannot: an ancestor is an
    /// object, or objects lie below it. A local directory refuses such writes by itself; S3
    /// would take both, so this asks first (one HEAD per ancestor and a listing). Two writers
    /// of `a` and `a/b` racing can still both succeed here.
    pub(crate) async fn conflict(
        &self,
        data: &StorePath,
        path: &OssPath,
    ) -> Result<Option<String>, ObjectError> {
        let parts: Vec<_> = data.parts().collect();
        let segments: Vec<&str> = path.key.split('/').collect();
        // `objects/<account>/<bucket>/` come before the key's segments.
        let key_start = parts.len() - segments.len();
        for n in 1..segments.len() {
            let ancestor = StorePath::from_iter(parts[..key_start + n].iter().cloned());
            match self
                .store
                .get_opts(&ancestor, GetOptions::default().with_head(true))
                .await
            {
                Ok(_) => {
                    return Ok(Some(format!(
                        "{path} cannot be written: oss://{}/{} is an object, not a folder",
                        path.bucket,
                        segments[..n].join("/")
                    )));
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(crate::objects::io_error(format_args!("writing {path}"), e)),
            }
        }
        match self.store.list(Some(data)).next().await {
            Some(Ok(_)) => Ok(Some(format!("{path} cannot be written: it is a folder"))),
            Some(Err(e)) => Err(crate::objects::io_error(format_args!("writing {path}"), e)),
            None => Ok(None),
        }
    }

    /// A URL of the service downloading `data` for `ttl`, when links are to redirect there.
    pub(crate) async fn presigned_get(
        &self,
        data: &StorePath,
        ttl: Duration,
    ) -> Result<Option<String>, ObjectError> {
        if !self.presign {
            return Ok(None);
        }
        let full = match &self.prefix {
            Some(prefix) => StorePath::from_iter(prefix.parts().chain(data.parts())),
            None => data.clone(),
        };
        let url = self
            .signer
            .signed_url(Method::GET, &full, ttl)
            .await
            .map_err(|e| crate::objects::io_error("presigning a download", e))?;
        Ok(Some(url.to_string()))
    }
}
