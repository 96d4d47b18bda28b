//! The root account's access key: from the environment when given, else the one stored in the
//! data dir, else a new one, created, stored and printed once.

use std::path::Path;

use anyhow::Context;
use cloudphone_core::resources::AccessKey;
use cloudphone_store::Store;

use crate::Config;

pub const ROOT_ACCOUNT: &str = "root";
const KEY_FILE: &str = "root-access-key.json";

/// The key and whether it was created just now.
#[derive(Clone, Debug)]
pub struct RootKey {
    pub key_id: String,
    pub secret: String,
    pub created: bool,
}

pub async fn ensure(store: &dyn Store, config: &Config) -> anyhow::Result<RootKey> {
    store.ensure_account(ROOT_ACCOUNT, "root").await?;
    let key = match &config.root_key {
        Some((id, secret)) => RootKey {
            key_id: id.clone(),
            secret: secret.clone(),
            created: false,
        },
        None => load_or_create(&config.data_dir)?,
    };
    store
        .put_access_key(&AccessKey {
            key_id: key.key_id.clone(),
            secret: key.secret.clone(),
            account_id: ROOT_ACCOUNT.into(),
            user_name: "root".into(),
        })
        .await?;
    Ok(key)
}

fn load_or_create(dir: &Path) -> anyhow::Result<RootKey> {
    let path = dir.join(KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let field = |name| {
            v.get(name)
                .and_then(|s| s.as_str())
                .map(str::to_string)
                .with_context(|| format!("{} has no {name}", path.display()))
        };
        return Ok(RootKey {
            key_id: field("AccessKeyId")?,
            secret: field("AccessKeySecret")?,
            created: false,
        });
    }
    let key = RootKey {
        key_id: format!("LTAI{}", cloudphone_core::ids::secret(20)),
        secret: cloudphone_core::ids::secret(30),
        created: true,
    };
    let text =
        serde_json::json!({ "AccessKeyId": key.key_id, "AccessKeySecret": key.secret }).to_string();
    match write_private(&path, &text) {
        Ok(()) => Ok(key),
        // Another node sharing the data dir created it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(dir),
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
