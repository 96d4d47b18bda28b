//! The client's config file: named profiles (endpoint, access key, region, CA file) in TOML at
//! `$CLOUDPHONE_CONFIG`, else `$XDG_CONFIG_HOME/cloudphone/config.toml`, else
//! `~/.config/cloudphone/config.toml`. Flags and environment variables win over the file.
//!
//! ```toml
//! [default]
//! endpoint = "http://127.0.0.1:9723"
//! access_key_id = "LTAI..."
//! access_key_secret = "..."
//!
//! [lab]
//! endpoint = "https://10.0.0.5:9723"
//! ca_file = "/etc/cloudphone/lab-ca.pem"
//! region = "cn-shanghai"
//! ```
//!
//! The file holds secrets: `configure` writes it owner-only (0600), and a file others can read
//! is reported on every use, as ssh does.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileProfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// PEM certificates of a CA trusted for an https:// endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Where the config file is, whether or not it exists.
pub fn path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var("CLOUDPHONE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("cloudphone").join("config.toml"))
}

/// Every profile in the file at `path`; none when it does not exist.
pub fn read(path: &Path) -> anyhow::Result<BTreeMap<String, FileProfile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
        && text.contains("access_key_secret")
    {
        eprintln!(
            "warning: {} holds a secret and others may read it; run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    toml::from_str(&text).with_context(|| format!("{} is not a valid config file", path.display()))
}

/// The profile `name` (the default one when `None`): a named profile must exist, the default
/// one may be absent.
pub fn profile(name: Option<&str>) -> anyhow::Result<FileProfile> {
    let Some(path) = path() else {
        return match name {
            Some(n) => bail!("no profile {n}: neither CLOUDPHONE_CONFIG nor HOME is set"),
            None => Ok(FileProfile::default()),
        };
    };
    let mut all = read(&path)?;
    match name {
        Some(n) => all
            .remove(n)
            .with_context(|| format!("no profile [{n}] in {}", path.display())),
        None => Ok(all.remove(DEFAULT_PROFILE).unwrap_or_default()),
    }
}

/// Sets the given fields of profile `name`, keeping the others, and writes the file owner-only
/// (through a temporary file renamed into place: a crash leaves the old file or the new one).
pub fn update(name: &str, change: &FileProfile) -> anyhow::Result<PathBuf> {
    let path = path().context("neither CLOUDPHONE_CONFIG nor HOME is set")?;
    let mut all = read(&path)?;
    let entry = all.entry(name.to_string()).or_default();
    let set = |slot: &mut Option<String>, value: &Option<String>| {
        if let Some(v) = value {
            *slot = Some(v.clone());
        }
    };
    set(&mut entry.endpoint, &change.endpoint);
    set(&mut entry.access_key_id, &change.access_key_id);
    set(&mut entry.access_key_secret, &change.access_key_secret);
    set(&mut entry.region, &change.region);
    set(&mut entry.ca_file, &change.ca_file);
    let dir = path.parent().context("the config path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(&all).context("writing the profiles as TOML")?;
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // An existing temporary file keeps its old mode: set it again.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_back_and_unknown_fields_are_refused() {
        let all: BTreeMap<String, FileProfile> = toml::from_str(
            "[default]\nendpoint = \"http://a:1\"\n[lab]\nregion = \"cn-shanghai\"\n",
        )
        .unwrap();
        assert_eq!(all["default"].endpoint.as_deref(), Some("http://a:1"));
        assert_eq!(all["lab"].region.as_deref(), Some("cn-shanghai"));
        assert!(toml::from_str::<BTreeMap<String, FileProfile>>("[x]\nendpont = \"a\"\n").is_err());
    }
}
