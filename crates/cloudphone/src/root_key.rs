//! The root account's access key: from the environment when given, else the one stored in the
//! data dir, else a new one, created, stored and printed once.
//!
//! On a shared store, nodes need not share a data dir (objects in S3): the first node records
//! its key's id in the setting `root-access-key-id`, and a node without a key file adopts that
//! key (writing its own file) instead of minting another.

use std::path::Path;

use anyhow::Context;
use cloudphone_core::resources::AccessKey;
use cloudphone_store::Store;

use crate::Config;

pub const ROOT_ACCOUNT: &str = "root";
const KEY_FILE: &str = "root-access-key.json";
/// The setting naming the root key the nodes of a shared store adopt.
const SHARED_KEY_SETTING: &str = "root-access-key-id";

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
        None => match load(&config.data_dir)? {
            Some(key) => key,
            None if store.shared() => adopt_or_create(store, &config.data_dir).await?,
            None => load_or_create(&config.data_dir)?,
        },
    };
    store
        .put_access_key(&AccessKey {
            key_id: key.key_id.clone(),
            secret: key.secret.clone(),
            account_id: ROOT_ACCOUNT.into(),
            user_name: "root".into(),
        })
        .await?;
    if store.shared() && config.root_key.is_none() {
        // A node started before this setting existed offers its key to the next ones.
        store
            .setting_or_init(SHARED_KEY_SETTING, &key.key_id)
            .await?;
    }
    Ok(key)
}

/// On a shared store: the key another node recorded, else a new one recorded for the others.
/// The candidate key is stored before the setting names it, so a node that reads the setting
/// always finds the key; a node that loses the race removes its candidate.
async fn adopt_or_create(store: &dyn Store, dir: &Path) -> anyhow::Result<RootKey> {
    let adopt = |key: AccessKey| -> anyhow::Result<RootKey> {
        let adopted = RootKey {
            key_id: key.key_id,
            secret: key.secret,
            created: false,
        };
        match write_key_file(dir, &adopted) {
            Ok(()) => Ok(adopted),
            // A node sharing this data dir wrote one meanwhile: that one counts.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(dir),
            Err(e) => Err(e).with_context(|| format!("writing {}", dir.join(KEY_FILE).display())),
        }
    };
    // The store reads settings only through `setting_or_init`: a candidate is offered, and
    // removed again when another node's key was there first.
    let candidate = new_key();
    let record = AccessKey {
        key_id: candidate.key_id.clone(),
        secret: candidate.secret.clone(),
        account_id: ROOT_ACCOUNT.into(),
        user_name: "root".into(),
    };
    store.put_access_key(&record).await?;
    let winner = store
        .setting_or_init(SHARED_KEY_SETTING, &candidate.key_id)
        .await?;
    if winner != candidate.key_id {
        store.delete_access_key(&candidate.key_id).await?;
        if let Some(key) = store.access_key(&winner).await? {
            tracing::info!(key_id = %winner, "adopted the root access key of the shared store");
            return adopt(key);
        }
        // The recorded key was deleted or disabled since: this node keeps a key of its own.
        tracing::warn!(key_id = %winner, "the shared root access key is gone; minting one");
        store.put_access_key(&record).await?;
    }
    match write_key_file(dir, &candidate) {
        Ok(()) => Ok(candidate),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(dir),
        Err(e) => Err(e).with_context(|| format!("writing {}", dir.join(KEY_FILE).display())),
    }
}

/// The key file of the data dir, if there is one.
fn load(dir: &Path) -> anyhow::Result<Option<RootKey>> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    load_or_create(dir).map(Some)
}

fn new_key() -> RootKey {
    RootKey {
        key_id: format!("LTAI{}", cloudphone_core::ids::secret(20)),
        secret: cloudphone_core::ids::secret(30),
        created: true,
    }
}

fn write_key_file(dir: &Path, key: &RootKey) -> std::io::Result<()> {
    let text =
        serde_json::json!({ "AccessKeyId": key.key_id, "AccessKeySecret": key.secret }).to_string();
    write_private(&dir.join(KEY_FILE), &text)
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
    let key = new_key();
    match write_key_file(dir, &key) {
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
