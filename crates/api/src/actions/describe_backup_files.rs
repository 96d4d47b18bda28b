//! DescribeBackupFiles: the caller's backups with their filters, newest first, paginated.
//! `MaxResults` is echoed as a string, as the vendor types it; times are `YYYY-MM-DD HH:mm:ss`
//! (UTC), in the filters as in `GmtCreated` / `GmtModified`.

use chrono::NaiveDateTime;
use cloudphone_core::ApiError;
use cloudphone_core::resources::Backup;
use cloudphone_core::time::plain;
use cloudphone_store::BackupFilter;
use serde_json::{Value, json};

use super::common::{Paging, internal};
use crate::params::Params;
use crate::state::Ctx;

/// The statuses a backup may be in (`RECOVERING` is the vendor's; it is never reported here).
const STATUSES: &[&str] = &[
    Backup::CREATING,
    Backup::AVAILABLE,
    Backup::FAILED,
    "RECOVERING",
];

pub struct DescribeBackupFiles {
    filter: BackupFilter,
    /// A filter on something no backup here has (an end user, matrix nodes).
    absent: bool,
    paging: Paging,
}

fn time(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) => NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
            .map(|t| Some(t.and_utc().timestamp_millis()))
            .map_err(|_| ApiError::invalid(name, "It must look like YYYY-MM-DD HH:mm:ss.")),
    }
}

impl DescribeBackupFiles {
    pub fn parse(p: &Params) -> Result<DescribeBackupFiles, ApiError> {
        let mut statuses = p.list("StatusList", 10)?;
        if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
            return Err(ApiError::invalid(
                "StatusList",
                format!("'{bad}' is not one of {}.", STATUSES.join(", ")),
            ));
        }
        statuses.sort();
        statuses.dedup();
        let start_ms = time(p, "StartTime")?;
        // The end time names a second: everything within it counts.
        let end_ms = time(p, "EndTime")?.map(|ms| ms + 999);
        if let (Some(s), Some(e)) = (start_ms, end_ms)
            && s > e
        {
            return Err(ApiError::invalid("EndTime", "It is before StartTime."));
        }
        let absent = p.get("EndUserId").is_some_and(|v| !v.is_empty())
            || p.get("SaleMode").is_some_and(|v| v != "Instance");
        Ok(DescribeBackupFiles {
            filter: BackupFilter {
                account_id: String::new(),
                id: p.string("BackupFileId"),
                instance_id: p.string("AndroidInstanceId"),
                instance_name: p.string("AndroidInstanceName"),
                name: p.string("BackupFileName"),
                description: p.string("Description"),
                group_id: p.string("InstanceGroupId"),
                statuses,
                start_ms,
                end_ms,
                backup_all: p.bool("BackupAll")?,
            },
            absent,
            paging: Paging::parse(p, 10)?,
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        let scope = format!("DescribeBackupFiles|{:?}|{}", self.filter, self.absent);
        let page = self.paging.page(ctx, &scope)?;
        let max = self.paging.max_results.to_string();
        if self.absent {
            return Ok(json!({ "TotalCount": 0, "MaxResults": max, "Data": [] }));
        }
        let listing = ctx
            .state
            .store
            .list_backups(&self.filter, &page)
            .await
            .map_err(internal)?;
        let data: Vec<Value> = listing
            .items
            .iter()
            .map(|b| backup_json(b, &ctx.state.region))
            .collect();
        let mut body = json!({
            "TotalCount": listing.total,
            "MaxResults": max,
            "Data": data,
        });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}

fn backup_json(b: &Backup, region: &str) -> Value {
    json!({
        "AndroidInstanceId": b.instance_id,
        "AndroidInstanceName": b.instance_name,
        "BackupAll": b.backup_all,
        "BackupFileId": b.id,
        "BackupFileName": b.name,
        "BackupFilePath": b.oss_path,
        "Channel": "CLOUDPHONE",
        "Description": b.description,
        "EndUserId": "",
        "FileSize": b.size,
        "GmtCreated": plain(b.created_ms),
        "GmtModified": plain(b.modified_ms),
        "InstanceGroupId": b.group_id,
        "RegionId": region,
        "SourceAppInfoList": b.source_apps,
        "SourceFilePathList": b.source_paths,
        "Status": b.status,
        "SystemVersion": b.system_version,
        "TaskId": b.task_id,
        "UploadEndpoint": b.upload_endpoint,
        "UploadType": "OSS",
    })
}
