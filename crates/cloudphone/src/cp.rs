//! `cloudphone cp`: copies a file into or out of a server's object store, through the
//! authenticated object routes (`PUT` / `GET /files/<bucket>/<key>`), signing each request with
//! ACS3-HMAC-SHA256 exactly as the SDK signs API calls, over the real path (the signing and the
//! HTTP or HTTPS connection are [`cloudphone_client`]'s).
//!
//! Files stream both ways: an upload is hashed first (the signature covers the SHA-256 of the
//! body), then sent from disk; a download is written to a temporary file beside the destination,
//! its MD5 checked against the server's, and renamed into place.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use cloudphone_api::files::{GET_OBJECT, PUT_OBJECT, signed_path};
use cloudphone_client::protocol::EMPTY_SHA256;
use cloudphone_client::{Client, Options, Request};
use cloudphone_objects::{OssPath, SCHEME};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use reqwest::header::CONTENT_LENGTH;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Files at least this large show a progress bar (when stdout is a terminal).
const PROGRESS_FROM_BYTES: u64 = 4 << 20;
const CHUNK_BYTES: usize = 256 << 10;

#[derive(Args)]
#[command(after_help = "\
Examples:
  cloudphone cp ./app.apk oss://my-bucket/apps/app.apk
  cloudphone cp ./app.apk oss://my-bucket/apps/          (keeps the file name)
  cloudphone cp oss://my-bucket/logs/out.txt ./out.txt

The endpoint may be http:// or https:// (--ca-file for a private CA). The bucket is created for
your account by its first upload; another account's bucket is reported as not found.")]
pub struct CpArgs {
    /// What to copy: a local file, or oss://bucket/key.
    source: String,
    /// Where to: oss://bucket/key (or oss://bucket/folder/ to keep the file name), or a local
    /// path (an existing directory keeps the object's name).
    destination: String,
    #[command(flatten)]
    profile: crate::cli::Profile,
    /// Print nothing but errors (no progress bar, no summary).
    #[arg(long, short)]
    quiet: bool,
}

/// How long `cp` waits for a connection (longer than a call's: a busy server may be slow to
/// accept a large upload).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Copier<'c> {
    client: &'c Client,
    quiet: bool,
}

/// Runs the copy; on failure prints the reason (the server's `Code` and `Message` when it
/// refused) on stderr and exits with status 1.
pub async fn run(args: CpArgs) -> anyhow::Result<()> {
    if let Err(e) = copy(args).await {
        eprintln!("cloudphone cp: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn copy(args: CpArgs) -> anyhow::Result<()> {
    let profile = args.profile.resolve()?;
    let options = Options {
        ca_file: profile.ca_file.clone(),
        connect_timeout: CONNECT_TIMEOUT,
        ..Options::default()
    };
    let client = Client::with_options(&profile.endpoint, profile.credentials, &options)?;
    let client = Copier {
        client: &client,
        quiet: args.quiet,
    };
    match (
        args.source.starts_with(SCHEME),
        args.destination.starts_with(SCHEME),
    ) {
        (false, true) => {
            let local = PathBuf::from(&args.source);
            let name = local
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} names no file", local.display()))?;
            let dest =
                if args.destination.ends_with('/') || args.destination.matches('/').count() == 2 {
                    OssPath::parse_prefix(&args.destination)?.join(name)?
                } else {
                    OssPath::parse(&args.destination)?
                };
            client.upload(&local, &dest).await
        }
        (true, false) => {
            let source = OssPath::parse(&args.source)?;
            let mut local = PathBuf::from(&args.destination);
            if local.is_dir() {
                local.push(source.file_name());
            }
            client.download(&source, &local).await
        }
        (true, true) => bail!("copying between two oss:// paths is not supported"),
        (false, false) => bail!("one side of cp must be an oss://bucket/key path"),
    }
}

/// Uploads `local` to `dest` as `cp` does (used by `apps create --file`).
pub async fn upload(
    client: &Client,
    local: &Path,
    dest: &OssPath,
    quiet: bool,
) -> anyhow::Result<()> {
    Copier { client, quiet }.upload(local, dest).await
}

impl Copier<'_> {
    /// A request to the object route of `path`, signed over its method, path, headers and the
    /// SHA-256 of its body.
    fn request(
        &self,
        method: &str,
        path: &OssPath,
        action: &str,
        body_sha256: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let route = signed_path(path);
        let request = Request {
            method,
            path: &route,
            accept: None,
            body_sha256,
        };
        Ok(self.client.signed(&request, action, &[])?)
    }

    /// Sends a request; a refusal reads `Code: Message (HTTP status, RequestId id)`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: impl FnOnce() -> String,
    ) -> anyhow::Result<reqwest::Response> {
        match self.client.execute(request).await {
            Ok(response) => Ok(response),
            Err(cloudphone_client::Error::Api {
                status,
                code,
                message,
                request_id,
            }) => {
                let id = if request_id.is_empty() {
                    "-"
                } else {
                    &request_id
                };
                bail!("{code}: {message} (HTTP {status}, RequestId {id})")
            }
            Err(e) => Err(anyhow::Error::from(e).context(what())),
        }
    }

    async fn upload(&self, local: &Path, dest: &OssPath) -> anyhow::Result<()> {
        let size = tokio::fs::metadata(local)
            .await
            .with_context(|| format!("reading {}", local.display()))?
            .len();
        let progress = self.progress(size, "hashing");
        let (sha256, md5) = hash_file(local, &progress).await?;
        progress.set_position(0);
        progress.set_message("uploading");
        let file = tokio::fs::File::open(local)
            .await
            .with_context(|| format!("opening {}", local.display()))?;
        let body = reqwest::Body::wrap_stream(file_stream(file, progress.clone()));
        let request = self
            .request("PUT", dest, PUT_OBJECT, &sha256)?
            .header(CONTENT_LENGTH, size)
            .body(body);
        let answer = self
            .send(request, || {
                format!("sending {} to {}", local.display(), self.client.endpoint())
            })
            .await;
        progress.finish_and_clear();
        let answer = answer?
            .bytes()
            .await
            .context("reading the server's answer")?;
        let answer: serde_json::Value =
            serde_json::from_slice(&answer).context("reading the server's answer")?;
        if answer["Md5"].as_str() != Some(md5.as_str()) || answer["Size"].as_u64() != Some(size) {
            bail!("the server stored something else than was sent: {answer}");
        }
        if !self.quiet {
            println!("{} -> {dest} ({size} bytes, md5 {md5})", local.display());
        }
        Ok(())
    }

    async fn download(&self, source: &OssPath, local: &Path) -> anyhow::Result<()> {
        let request = self.request("GET", source, GET_OBJECT, EMPTY_SHA256)?;
        let response = self
            .send(request, || {
                format!("fetching {source} from {}", self.client.endpoint())
            })
            .await?;
        let expected_md5 = response
            .headers()
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(v).ok()
            })
            .map(hex::encode);
        let size = response.content_length();
        let progress = self.progress(size.unwrap_or(0), "downloading");
        let dir = match local.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".cloudphone-cp-")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        let (file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut md5 = Md5::new();
        let mut received = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("receiving {source}"))?;
            md5.update(&chunk);
            received += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
            file.write_all(&chunk)
                .await
                .with_context(|| format!("writing {}", local.display()))?;
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        progress.finish_and_clear();
        let md5 = hex::encode(md5.finalize());
        if size.is_some_and(|s| s != received) {
            bail!(
                "{source}: received {received} bytes of {}",
                size.unwrap_or(0)
            );
        }
        if let Some(expected) = expected_md5
            && expected != md5
        {
            bail!(
                "{source}: the MD5 of what was received ({md5}) is not the server's ({expected})"
            );
        }
        temp_path
            .persist(local)
            .with_context(|| format!("writing {}", local.display()))?;
        if !self.quiet {
            println!(
                "{source} -> {} ({received} bytes, md5 {md5})",
                local.display()
            );
        }
        Ok(())
    }

    fn progress(&self, size: u64, what: &'static str) -> ProgressBar {
        if self.quiet || size < PROGRESS_FROM_BYTES || !std::io::stdout().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(size).with_message(what);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>11} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }
}

/// SHA-256 (signed) and MD5 (compared with what the server stored) of a file, streamed.
async fn hash_file(path: &Path, progress: &ProgressBar) -> anyhow::Result<(String, String)> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut sha = Sha256::new();
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
        progress.inc(n as u64);
    }
    Ok((hex::encode(sha.finalize()), hex::encode(md5.finalize())))
}

/// The file's bytes, in chunks, counted on `progress`.
fn file_stream(
    file: tokio::fs::File,
    progress: ProgressBar,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::try_unfold((file, progress), |(mut file, progress)| async move {
        let mut buf = bytes::BytesMut::with_capacity(CHUNK_BYTES);
        let n = file.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        progress.inc(n as u64);
        Ok(Some((buf.freeze(), (file, progress))))
    })
}
