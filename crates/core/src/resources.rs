//! The resources a caller owns (groups, instances, tasks) and the catalogue types of the fleet
//! (specs, images), as plain data.

use crate::instance::InstanceStatus;
use crate::task::{BatchCounts, Level, TaskStatus, TaskType};

/// An access key: id and secret, the account it acts for, and the user name shown as `Operator`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub key_id: String,
    pub secret: String,
    pub account_id: String,
    pub user_name: String,
}

/// A purchasable instance specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub cpu: u32,
    pub memory_mib: u32,
    pub width: u32,
    pub height: u32,
    /// The system disk the vendor sells with the spec, in GiB (DescribeSpec's `SystemDiskSize`).
    pub system_disk_gib: u32,
    pub describe: &'static str,
}

impl Spec {
    /// The spec's family as DescribeSpec's `SpecType` names it: the second part of its name
    /// (`acp.basic.small` is `basic`), one of `basic`, `std` and `perf`.
    pub fn kind(&self) -> &'static str {
        self.name.split('.').nth(1).unwrap_or("")
    }

    /// The milli-CPUs a phone of this spec takes from its host.
    pub fn cpu_milli(&self) -> u64 {
        u64::from(self.cpu) * 1000
    }
}

/// The specs the simulated fleet sells: the vendor's examples.
pub const SPECS: &[Spec] = &[
    Spec {
        name: "acp.basic.small",
        cpu: 2,
        memory_mib: 4096,
        width: 720,
        height: 1280,
        system_disk_gib: 32,
        describe: "2 vCPU 4 GiB",
    },
    Spec {
        name: "acp.std.large",
        cpu: 4,
        memory_mib: 8192,
        width: 1080,
        height: 1920,
        system_disk_gib: 64,
        describe: "4 vCPU 8 GiB",
    },
    Spec {
        name: "acp.perf.large",
        cpu: 8,
        memory_mib: 16384,
        width: 1080,
        height: 1920,
        system_disk_gib: 128,
        describe: "8 vCPU 16 GiB",
    },
];

pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// The account's default bucket, as the vendor names it (`cloudphone-saved-bucket-{Region}-{AliUid}`),
/// reduced to the characters a bucket name may hold.
pub fn default_bucket(region: &str, account_id: &str) -> String {
    let raw = format!("cloudphone-saved-bucket-{region}-{account_id}").to_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// An app registered with CreateApp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// Assigned by the store.
    pub id: i64,
    pub account_id: String,
    pub name: String,
    pub package: String,
    pub version_name: String,
    pub version_code: String,
    pub md5: String,
    pub size: i64,
    /// Where the APK is: an `oss://` path or an http(s) URL.
    pub source: String,
    pub description: String,
    pub icon_url: String,
    pub install_param: String,
    pub created_ms: i64,
    pub modified_ms: i64,
    /// INSTALLING, INSTALLED, INSTALLFAILED, UNINSTALLING, UNINSTALLED or UNINSTALLFAILED, from
    /// the latest install or uninstall batch over the app (filled when listed).
    pub installation_status: String,
}

/// An ADB key pair of an account: its public half only. The private key of a CreateKeyPair
/// leaves the server in that call's answer and is never stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// `adbkey.pub`'s text: the base64 of Android's `RSAPublicKey` struct and a comment.
    pub public_key: String,
    /// adb's fingerprint of the key (upper-case hex SHA-256 of its DER SubjectPublicKeyInfo).
    pub fingerprint: String,
    pub created_ms: i64,
}

/// An image a backend can run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// `ro.build.version.release`, e.g. `14`.
    pub android_version: String,
    pub system_type: String,
    pub description: String,
    pub release_ms: i64,
}

/// An instance group as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub region_id: String,
    pub image_id: String,
    pub spec: String,
    pub charge_type: String,
    pub tags: Vec<(String, String)>,
    pub created_ms: i64,
    pub modified_ms: i64,
    /// Set once DeleteAndroidInstanceGroup accepted the group.
    pub deleting: bool,
}

impl Group {
    /// What its phones are named after: `<base>-<n>` (`cloudphone` for a group without a name).
    pub fn phone_base_name(&self) -> &str {
        if self.name.is_empty() {
            "cloudphone"
        } else {
            &self.name
        }
    }

    /// Its `n`th phone, new: CREATING, of the group's image, spec and charge type, placed
    /// nowhere yet (placement is the store's, in the transaction that records it).
    pub fn new_phone(&self, n: u64, now_ms: i64) -> Instance {
        Instance {
            id: crate::ids::new_id(crate::ids::INSTANCE),
            account_id: self.account_id.clone(),
            group_id: self.id.clone(),
            group_name: self.name.clone(),
            name: format!("{}-{n}", self.phone_base_name()),
            status: InstanceStatus::Creating,
            image_id: self.image_id.clone(),
            spec: self.spec.clone(),
            region_id: self.region_id.clone(),
            up_bandwidth_limit: None,
            down_bandwidth_limit: None,
            charge_type: self.charge_type.clone(),
            created_ms: now_ms,
            modified_ms: now_ms,
            host: None,
            adb_port: None,
        }
    }
}

/// A group with the statuses of its instances summed up, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: Group,
    pub instances: i64,
    pub creating: i64,
    pub deleted: i64,
    /// The status of the group's latest image update batch, if it had one.
    pub image_update: Option<TaskStatus>,
}

impl GroupSummary {
    /// The group's status, from its phones and its latest image update: DELETING/DELETED once
    /// deletion was asked for, CREATING while a phone is being created, UPDATING while an image
    /// update runs and UPDATING_FAILED when one failed on some phone, RUNNING otherwise.
    pub fn status(&self) -> &'static str {
        if self.group.deleting {
            if self.deleted == self.instances {
                "DELETED"
            } else {
                "DELETING"
            }
        } else if self.creating > 0 {
            "CREATING"
        } else {
            match self.image_update {
                Some(TaskStatus::Waiting | TaskStatus::Processing) => "UPDATING",
                Some(TaskStatus::Failed | TaskStatus::PartFinished) => "UPDATING_FAILED",
                _ => "RUNNING",
            }
        }
    }
}

/// A cloud phone instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub account_id: String,
    pub group_id: String,
    /// Filled from the group when read.
    pub group_name: String,
    /// The group's charge type (`PostPaid` or `PrePaid`), filled from the group when read.
    pub charge_type: String,
    pub name: String,
    pub status: InstanceStatus,
    pub image_id: String,
    pub spec: String,
    pub region_id: String,
    pub up_bandwidth_limit: Option<i64>,
    pub down_bandwidth_limit: Option<i64>,
    pub created_ms: i64,
    pub modified_ms: i64,
    /// The farm host it lives on (`None`: not placed), and its adbd's port there (host
    /// network): where a backend reaches it. Set by placement, never by a writer of the row.
    pub host: Option<String>,
    pub adb_port: Option<u16>,
}

/// A task, batch (Level 1), instance-level (Level 2) or internal (Level 0), as DescribeTasks
/// shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub account_id: String,
    pub invoke_id: String,
    pub parent_id: Option<String>,
    pub level: Level,
    pub task_type: TaskType,
    pub status: TaskStatus,
    /// The group for a batch that names one; the instance for an instance task; else empty.
    pub resource_id: String,
    pub instance_id: Option<String>,
    pub instance_name: Option<String>,
    /// The instance's status now, read when the task is read (instance tasks only).
    pub instance_status: Option<InstanceStatus>,
    pub param: String,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
    pub operator: String,
    pub start_ms: i64,
    pub finish_ms: Option<i64>,
    /// Children counters (batches only).
    pub counts: Option<BatchCounts>,
    /// Attempts started so far (0 while waiting).
    pub attempt: i64,
}

/// A [`Task`] borrowed field by field: what a listing hands over row by row (straight from the
/// database row, or from a [`Task`] with [`Task::view`]) without copying any text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRef<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub invoke_id: &'a str,
    pub parent_id: Option<&'a str>,
    pub level: Level,
    pub task_type: TaskType,
    pub status: TaskStatus,
    pub resource_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub instance_name: Option<&'a str>,
    pub instance_status: Option<InstanceStatus>,
    pub param: &'a str,
    pub result: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub error_msg: Option<&'a str>,
    pub operator: &'a str,
    pub start_ms: i64,
    pub finish_ms: Option<i64>,
    pub counts: Option<BatchCounts>,
    pub attempt: i64,
}

impl Task {
    pub fn view(&self) -> TaskRef<'_> {
        TaskRef {
            id: &self.id,
            account_id: &self.account_id,
            invoke_id: &self.invoke_id,
            parent_id: self.parent_id.as_deref(),
            level: self.level,
            task_type: self.task_type,
            status: self.status,
            resource_id: &self.resource_id,
            instance_id: self.instance_id.as_deref(),
            instance_name: self.instance_name.as_deref(),
            instance_status: self.instance_status,
            param: &self.param,
            result: self.result.as_deref(),
            error_code: self.error_code.as_deref(),
            error_msg: self.error_msg.as_deref(),
            operator: &self.operator,
            start_ms: self.start_ms,
            finish_ms: self.finish_ms,
            counts: self.counts,
            attempt: self.attempt,
        }
    }
}

impl TaskRef<'_> {
    pub fn to_task(&self) -> Task {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Task {
            id: self.id.to_owned(),
            account_id: self.account_id.to_owned(),
            invoke_id: self.invoke_id.to_owned(),
            parent_id: owned(self.parent_id),
            level: self.level,
            task_type: self.task_type,
            status: self.status,
            resource_id: self.resource_id.to_owned(),
            instance_id: owned(self.instance_id),
            instance_name: owned(self.instance_name),
            instance_status: self.instance_status,
            param: self.param.to_owned(),
            result: owned(self.result),
            error_code: owned(self.error_code),
            error_msg: owned(self.error_msg),
            operator: self.operator.to_owned(),
            start_ms: self.start_ms,
            finish_ms: self.finish_ms,
            counts: self.counts,
            attempt: self.attempt,
        }
    }
}

/// A backup file made by BackupFile: one per instance and call, its archive (a tar of the
/// phone's paths) stored in the object store at `oss_path`.
///
/// `status` is `CREATING` while its BackupFile task has not finished, `AVAILABLE` once the
/// archive is stored, `FAILED` when the task failed (the vendor lists only `AVAILABLE` and
/// `RECOVERING`; this server never reports `RECOVERING`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub id: String,
    pub account_id: String,
    pub instance_id: String,
    /// The instance's name when the backup was made.
    pub instance_name: String,
    pub group_id: String,
    /// `oss://bucket/key` of the archive.
    pub oss_path: String,
    pub name: String,
    pub description: String,
    /// The paths the call named (`SourceFilePathList`).
    pub source_paths: Vec<String>,
    pub exclude_paths: Vec<String>,
    pub source_apps: Vec<String>,
    pub backup_all: bool,
    pub upload_endpoint: String,
    /// E.g. `Android 14`, from the instance's image.
    pub system_version: String,
    pub status: String,
    /// The archive's size in bytes (0 until it is stored).
    pub size: i64,
    /// The BackupFile instance task that makes it.
    pub task_id: String,
    pub created_ms: i64,
    pub modified_ms: i64,
}

impl Backup {
    pub const CREATING: &'static str = "CREATING";
    pub const AVAILABLE: &'static str = "AVAILABLE";
    pub const FAILED: &'static str = "FAILED";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_found_by_name() {
        let large = spec("acp.std.large").expect("a sold spec");
        assert_eq!((large.cpu, large.memory_mib), (4, 8192));
        assert_eq!(spec("acp.basic.small").map(|s| s.cpu), Some(2));
        assert_eq!(spec("acp.nope"), None);
        let kinds: Vec<_> = SPECS
            .iter()
            .map(|s| (s.kind(), s.system_disk_gib))
            .collect();
        assert_eq!(kinds, [("basic", 32), ("std", 64), ("perf", 128)]);
        assert_eq!(large.cpu_milli(), 4000);
        assert_eq!(spec(""), None);
    }

    /// The vendor's name, `cloudphone-saved-bucket-{Region}-{AliUid}`, in the characters a
    /// bucket name may hold: lower case, digits and `-`, at most 63, not ending in `-`.
    #[test]
    fn the_default_bucket_is_the_vendor_s_name_made_valid() {
        assert_eq!(
            default_bucket("cn-hangzhou", "1234567890"),
            "cloudphone-saved-bucket-cn-hangzhou-1234567890"
        );
        assert_eq!(
            default_bucket("cn-hangzhou", "Team_A.dev"),
            "cloudphone-saved-bucket-cn-hangzhou-team-a-dev"
        );
        let long = default_bucket("cn-hangzhou", &"a".repeat(100));
        assert_eq!(long.len(), 63);
        assert_eq!(
            default_bucket("cn-hangzhou", "x-"),
            "cloudphone-saved-bucket-cn-hangzhou-x"
        );
        // Cut at 63 where a `-` was the last character kept.
        let cut = default_bucket("cn-hangzhou", &format!("{}-tail", "a".repeat(26)));
        assert_eq!(
            cut,
            format!("cloudphone-saved-bucket-cn-hangzhou-{}", "a".repeat(26))
        );
    }

    fn group(deleting: bool, instances: i64, creating: i64, deleted: i64) -> GroupSummary {
        GroupSummary {
            group: Group {
                id: "ag-0123456789abcdef".into(),
                account_id: "1".into(),
                name: "g".into(),
                region_id: "cn-hangzhou".into(),
                image_id: "imgc-0123456789abcdef".into(),
                spec: "acp.basic.small".into(),
                charge_type: "PostPaid".into(),
                tags: Vec::new(),
                created_ms: 0,
                modified_ms: 0,
                deleting,
            },
            instances,
            creating,
            deleted,
            image_update: None,
        }
    }

    #[test]
    fn a_group_is_creating_while_any_phone_is() {
        assert_eq!(group(false, 3, 0, 0).status(), "RUNNING");
        assert_eq!(group(false, 3, 1, 0).status(), "CREATING");
        assert_eq!(group(false, 3, 3, 0).status(), "CREATING");
        // An empty group, or one whose phones are all made, is RUNNING.
        assert_eq!(group(false, 0, 0, 0).status(), "RUNNING");
    }

    #[test]
    fn a_deleted_group_is_deleting_until_its_last_phone_is_gone() {
        assert_eq!(group(true, 3, 0, 2).status(), "DELETING");
        assert_eq!(group(true, 3, 1, 0).status(), "DELETING");
        assert_eq!(group(true, 3, 0, 3).status(), "DELETED");
        assert_eq!(group(true, 0, 0, 0).status(), "DELETED");
    }

    /// UpdateInstanceGroupImage: UPDATING while its batch runs, UPDATING_FAILED once it failed on
    /// some phone, RUNNING again when every phone took the image (or none was tried).
    #[test]
    fn a_group_shows_its_latest_image_update() {
        let with = |update| GroupSummary {
            image_update: Some(update),
            ..group(false, 3, 0, 0)
        };
        assert_eq!(with(TaskStatus::Waiting).status(), "UPDATING");
        assert_eq!(with(TaskStatus::Processing).status(), "UPDATING");
        assert_eq!(with(TaskStatus::Failed).status(), "UPDATING_FAILED");
        assert_eq!(with(TaskStatus::PartFinished).status(), "UPDATING_FAILED");
        assert_eq!(with(TaskStatus::Finished).status(), "RUNNING");
        assert_eq!(with(TaskStatus::Skipped).status(), "RUNNING");
        // Creating and deleting come first.
        let creating = GroupSummary {
            image_update: Some(TaskStatus::Failed),
            ..group(false, 3, 1, 0)
        };
        assert_eq!(creating.status(), "CREATING");
        let deleting = GroupSummary {
            image_update: Some(TaskStatus::Processing),
            ..group(true, 3, 0, 1)
        };
        assert_eq!(deleting.status(), "DELETING");
    }
}
