//! Reads what `CreateApp` needs to know about an APK: the package name, the version, the label and
//! the minimum SDK, from the binary `AndroidManifest.xml` inside it.
//!
//! - [`read_apk`] opens the APK as a zip through its central directory (as Android does) and
//!   inflates only `AndroidManifest.xml`, never more than [`MAX_MANIFEST_BYTES`] of it, whatever
//!   sizes the archive declares.
//! - [`read_manifest`] decodes the Android binary XML (AXML) of a manifest.
//!
//! The AXML reader is ours (see the `axml` module for why no crate was used): it validates every
//! chunk the way Android's `ResXMLTree` does and decodes strings lazily, so malformed input is an
//! error and never a panic, and memory stays bounded by the few values returned.
//!
//! Both functions block (file reads, inflating): async callers run them on a blocking thread.
//!
//! With the `test-support` feature, the `testing` module builds real binary manifests and APKs,
//! so other crates' tests can upload genuine APKs without shipping binary fixtures.

mod axml;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use zip::ZipArchive;
use zip::result::ZipError;

/// Largest `AndroidManifest.xml` read. Real manifests are tens to hundreds of KiB (large apps stay
/// under 1 MiB); the cap keeps a zip bomb or a hostile size field from costing more than this.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Name of the manifest entry; Android looks it up by this exact name.
const MANIFEST_ENTRY: &str = "AndroidManifest.xml";

/// What an APK's manifest says about the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApkInfo {
    /// `<manifest package>`, checked the way Android checks it (letters, digits and `_`, segments
    /// start with a letter, at least one `.`), so it is safe to show and to pass to `pm`.
    pub package: String,
    /// `android:versionName` when it is a literal string (a `@string/...` reference cannot be
    /// resolved without `resources.arsc`, so it is `None`).
    pub version_name: Option<String>,
    /// Android's long version code: `android:versionCodeMajor` in the high 32 bits,
    /// `android:versionCode` in the low 32.
    pub version_code: Option<u64>,
    /// `<application android:label>` when it is a literal string, `None` for a resource reference.
    pub label: Option<String>,
    /// `<uses-sdk android:minSdkVersion>` when it is a number (a preview codename is `None`).
    pub min_sdk: Option<u32>,
}

/// Why an APK or a manifest could not be read. The strings are for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApkError {
    /// The file is not a zip archive (so not an APK).
    #[error("not an APK (not a zip archive): {0}")]
    NotAZip(String),
    /// A zip archive without `AndroidManifest.xml`.
    #[error("not an APK: no AndroidManifest.xml in the archive")]
    NoManifest,
    /// `AndroidManifest.xml` is present but malformed, too large, or lacks a valid package name.
    #[error("malformed AndroidManifest.xml: {0}")]
    BadManifest(String),
    /// The file could not be read (missing, permissions, disk).
    #[error("cannot read the APK: {0}")]
    Io(String),
}

/// Reads the manifest of the APK at `path`.
///
/// Only the zip's central directory and the manifest entry are read; the manifest is inflated
/// into memory up to [`MAX_MANIFEST_BYTES`] (declared sizes are not trusted: the read itself is
/// capped). Blocking.
pub fn read_apk(path: &Path) -> Result<ApkInfo, ApkError> {
    let io_error = |e: io::Error| ApkError::Io(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(io_error)?;
    // A directory opens fine on Unix and then fails seeks with EINVAL, which the zip reader's
    // errors cannot tell from a damaged archive.
    if !file.metadata().map_err(io_error)?.is_file() {
        return Err(ApkError::Io(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|e| match e {
        ZipError::Io(e) if !is_format_error(&e) => ApkError::Io(e.to_string()),
        other => ApkError::NotAZip(other.to_string()),
    })?;
    let entry = archive.by_name(MANIFEST_ENTRY).map_err(|e| match e {
        ZipError::FileNotFound => ApkError::NoManifest,
        ZipError::Io(e) if !is_format_error(&e) => ApkError::Io(e.to_string()),
        // Encrypted, an unsupported compression method, a broken local header: Android could
        // not read it either.
        other => ApkError::BadManifest(format!("{MANIFEST_ENTRY} cannot be extracted: {other}")),
    })?;
    let declared = entry.size();
    if declared > MAX_MANIFEST_BYTES as u64 {
        return Err(too_large(declared));
    }
    // The declared size only sizes the first allocation; `take` is what bounds the read, as the
    // declared size may lie.
    let mut manifest = Vec::with_capacity(declared as usize);
    entry
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut manifest)
        .map_err(|e| {
            if is_format_error(&e) {
                ApkError::BadManifest(format!("{MANIFEST_ENTRY} cannot be inflated: {e}"))
            } else {
                ApkError::Io(e.to_string())
            }
        })?;
    if manifest.len() > MAX_MANIFEST_BYTES {
        return Err(too_large(manifest.len() as u64));
    }
    read_manifest(&manifest)
}

/// Decodes a binary (AXML) `AndroidManifest.xml`: the `<manifest>` root's `package`,
/// `android:versionCode` (+ `versionCodeMajor`) and `android:versionName`, the first
/// `<uses-sdk android:minSdkVersion>` and the first `<application android:label>`.
///
/// Plain-text XML is rejected: APKs always carry the compiled form.
pub fn read_manifest(axml: &[u8]) -> Result<ApkInfo, ApkError> {
    if axml.len() > MAX_MANIFEST_BYTES {
        return Err(too_large(axml.len() as u64));
    }
    axml::read(axml)
}

fn too_large(size: u64) -> ApkError {
    ApkError::BadManifest(format!(
        "{MANIFEST_ENTRY} is {size} bytes, above the {MAX_MANIFEST_BYTES}-byte limit"
    ))
}

/// I/O errors that the zip reader uses for a damaged archive rather than a failing disk.
fn is_format_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput
    )
}
