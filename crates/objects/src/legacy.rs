//! Moves the object layout of earlier versions, where bucket names were one namespace for all
//! accounts (`data/<bucket>/<key>`, `meta/<bucket>/<key>`, owners in the store's `buckets`
//! table), under the owner's namespace (`objects/<account>/<bucket>/<key>` and
//! `records/<account>/...`).
//!
//! Each bucket moves by one rename of its directory, so a crash leaves every bucket either
//! moved or not, and the next start finishes the job. A bucket with no recorded owner, or whose
//! new place is taken, stays where it is and is reported.

use std::collections::HashMap;
use std::path::Path;

use cloudphone_store::Store;
use tracing::{info, warn};

use crate::ObjectError;
use crate::layout::{DATA, RECORDS, encoded};

/// The old top directories and where their buckets go.
const MOVES: [(&str, &str); 2] = [("data", DATA), ("meta", RECORDS)];

/// Moves every bucket of the old layout under `root`; returns how many directories moved.
pub(crate) async fn migrate(root: &Path, store: &dyn Store) -> Result<usize, ObjectError> {
    let mut moved = 0;
    // A bucket is in both old top directories: its owner is looked up once.
    let mut owners: HashMap<String, Option<String>> = HashMap::new();
    for (old, new) in MOVES {
        let old_top = root.join(old);
        let Ok(entries) = std::fs::read_dir(&old_top) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(bucket) = name.to_str() else {
                warn!(dir = %entry.path().display(), "not a bucket of the old object layout; left");
                continue;
            };
            let owner = match owners.get(bucket) {
                Some(owner) => owner.clone(),
                None => {
                    let owner = store.bucket_owner(bucket).await.map_err(|e| {
                        warn!(error = %e, "looking up a bucket's owner");
                        ObjectError::Io(format!("looking up the owner of bucket {bucket}: {e}"))
                    })?;
                    owners.insert(bucket.to_string(), owner.clone());
                    owner
                }
            };
            let Some(owner) = owner else {
                warn!(
                    bucket,
                    "a bucket of the old object layout has no owner; left in place"
                );
                continue;
            };
            let parent = root.join(new).join(encoded(&owner));
            let target = parent.join(bucket);
            if target.exists() {
                warn!(bucket, account = %owner, "a bucket of the old object layout is already \
                       in its account's namespace; left in place");
                continue;
            }
            std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
            std::fs::rename(entry.path(), &target).map_err(|e| io(&target, e))?;
            sync_dir(&parent);
            moved += 1;
            info!(bucket, account = %owner, "moved a bucket into its account's namespace");
        }
        sync_dir(&old_top);
        // Removed only once empty: what was left is still there to be looked at.
        let _ = std::fs::remove_dir(&old_top);
    }
    Ok(moved)
}

fn io(path: &Path, e: std::io::Error) -> ObjectError {
    warn!(error = %e, path = %path.display(), "moving the old object layout");
    ObjectError::Io(format!(
        "moving the old object layout to {}: {e}",
        path.display()
    ))
}

/// Makes a rename durable; a failure only means the move may be redone after a power cut.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
