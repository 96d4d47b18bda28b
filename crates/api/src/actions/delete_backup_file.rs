//! DeleteBackupFile: forgets the caller's backups. All or nothing: an id that is unknown or
//! another account's fails the call (404) and deletes nothing. The archives stay in the object
//! store (the caller owns the bucket and may remove them there).

use cloudphone_core::ApiError;
use serde_json::{Value, json};

use super::common::{dedup, internal};
use crate::params::Params;
use crate::state::Ctx;

pub struct DeleteBackupFile {
    ids: Vec<String>,
}

impl DeleteBackupFile {
    pub fn parse(p: &Params) -> Result<DeleteBackupFile, ApiError> {
        let ids = dedup(p.list("BackupFileIdList", 100)?);
        if ids.is_empty() {
            return Err(ApiError::missing("BackupFileIdList"));
        }
        Ok(DeleteBackupFile { ids })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let found = ctx
            .state
            .store
            .backups_by_id(ctx.account(), &self.ids)
            .await
            .map_err(internal)?;
        if let Some(missing) = self
            .ids
            .iter()
            .find(|id| !found.iter().any(|b| &b.id == *id))
        {
            return Err(ApiError::not_found("BackupFileId", missing));
        }
        ctx.state
            .store
            .delete_backups(ctx.account(), &self.ids)
            .await
            .map_err(internal)?;
        Ok(json!({}))
    }
}
