//! The typed `Param`s write exactly the JSON the API wrote before they existed (`json!` objects,
//! keys sorted, optional keys absent), byte for byte, and read back what they wrote; a `Param`
//! that is not its type's is refused with the reason.

use serde_json::{Map, Value, json};

use super::batch;
use super::*;

/// The typed value's JSON is `old` (what the API's `json!` wrote) and the literal `text`.
fn same<T: Serialize>(typed: &T, old: Value, text: &str) {
    assert_eq!(to_json(typed), old.to_string());
    assert_eq!(to_json(typed), text);
}

/// A child's JSON is as above and reads back as the same `TaskParam`.
fn child<T: Serialize>(task_type: TaskType, typed: &T, old: Value, text: &str, back: TaskParam) {
    same(typed, old, text);
    assert_eq!(TaskParam::parse(task_type, text), Ok(back));
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The lifecycle actions wrote the options they were given into a map, and the batch that map
/// plus `AndroidInstanceIds`.
fn options(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn with_instances(mut map: Map<String, Value>, key: &str, list: &[&str]) -> Value {
    map.insert(key.into(), json!(list));
    Value::Object(map)
}

#[test]
fn internal_tasks_take_an_empty_object() {
    child(
        TaskType::CreateInstance,
        &NoParam {},
        json!({}),
        "{}",
        TaskParam::CreateInstance(NoParam {}),
    );
    assert_eq!(
        TaskParam::parse(TaskType::DeleteInstance, "{}"),
        Ok(TaskParam::DeleteInstance(NoParam {}))
    );
}

#[test]
fn migrate_instance() {
    let drain = MigrateParam {
        drain: Some("dr-0123456789abcdef".into()),
        from: "rack1-a".into(),
        mode: MigrateMode::Copy,
        to: "rack1-b".into(),
    };
    let text = r#"{"Drain":"dr-0123456789abcdef","From":"rack1-a","Mode":"copy","To":"rack1-b"}"#;
    assert_eq!(to_json(&drain), text);
    assert_eq!(
        TaskParam::parse(TaskType::MigrateInstance, text),
        Ok(TaskParam::MigrateInstance(drain))
    );
    let alone = r#"{"From":"a","Mode":"recreate","To":"b"}"#;
    assert!(matches!(
        TaskParam::parse(TaskType::MigrateInstance, alone),
        Ok(TaskParam::MigrateInstance(MigrateParam {
            drain: None,
            mode: MigrateMode::Recreate,
            ..
        }))
    ));
    assert!(
        TaskParam::parse(
            TaskType::MigrateInstance,
            r#"{"From":"a","Mode":"move","To":"b"}"#
        )
        .is_err()
    );
}

#[test]
fn start_instance() {
    let none = StartParam::default();
    child(
        TaskType::StartInstance,
        &none,
        Value::Object(Map::new()),
        "{}",
        TaskParam::StartInstance(none.clone()),
    );
    let given = StartParam {
        sale_mode: Some("Auto".into()),
    };
    let old = options(&[("SaleMode", json!("Auto"))]);
    child(
        TaskType::StartInstance,
        &given,
        Value::Object(old.clone()),
        r#"{"SaleMode":"Auto"}"#,
        TaskParam::StartInstance(given.clone()),
    );
    same(
        &batch::Start {
            android_instance_ids: ids(&["acp-1", "acp-2"]),
            options: given,
        },
        with_instances(old, "AndroidInstanceIds", &["acp-1", "acp-2"]),
        r#"{"AndroidInstanceIds":["acp-1","acp-2"],"SaleMode":"Auto"}"#,
    );
    same(
        &batch::Start {
            android_instance_ids: ids(&["acp-1"]),
            options: none,
        },
        with_instances(Map::new(), "AndroidInstanceIds", &["acp-1"]),
        r#"{"AndroidInstanceIds":["acp-1"]}"#,
    );
}

#[test]
fn stop_instance() {
    let given = StopParam {
        force_stop: Some(true),
        sale_mode: None,
    };
    let old = options(&[("ForceStop", json!(true))]);
    child(
        TaskType::StopInstance,
        &given,
        Value::Object(old.clone()),
        r#"{"ForceStop":true}"#,
        TaskParam::StopInstance(given.clone()),
    );
    same(
        &batch::Stop {
            android_instance_ids: ids(&["acp-1"]),
            options: given,
        },
        with_instances(old, "AndroidInstanceIds", &["acp-1"]),
        r#"{"AndroidInstanceIds":["acp-1"],"ForceStop":true}"#,
    );
    let both = StopParam {
        force_stop: Some(false),
        sale_mode: Some("x".into()),
    };
    child(
        TaskType::StopInstance,
        &both,
        json!({ "ForceStop": false, "SaleMode": "x" }),
        r#"{"ForceStop":false,"SaleMode":"x"}"#,
        TaskParam::StopInstance(both.clone()),
    );
}

#[test]
fn reboot_instance() {
    let given = RebootParam {
        force_stop: Some(true),
        ignore_param_validation: Some(false),
        sale_mode: Some("s".into()),
    };
    let old = options(&[
        ("ForceStop", json!(true)),
        ("IgnoreParamValidation", json!(false)),
        ("SaleMode", json!("s")),
    ]);
    let text = r#"{"ForceStop":true,"IgnoreParamValidation":false,"SaleMode":"s"}"#;
    child(
        TaskType::RebootInstance,
        &given,
        Value::Object(old.clone()),
        text,
        TaskParam::RebootInstance(given.clone()),
    );
    same(
        &batch::Reboot {
            android_instance_ids: ids(&["acp-1"]),
            options: given,
        },
        with_instances(old, "AndroidInstanceIds", &["acp-1"]),
        r#"{"AndroidInstanceIds":["acp-1"],"ForceStop":true,"IgnoreParamValidation":false,"SaleMode":"s"}"#,
    );
}

#[test]
fn reset_instance() {
    let given = ResetParam {
        auto_pay: Some(true),
        ignore_param_validation: Some(true),
        promotion_id: Some("p".into()),
        sale_mode: Some("s".into()),
        setting_reset_type: Some(1),
        target_data_disk_size: Some(2147483647),
    };
    let old = options(&[
        ("AutoPay", json!(true)),
        ("IgnoreParamValidation", json!(true)),
        ("SettingResetType", json!(1i64)),
        ("TargetDataDiskSize", json!(2147483647i64)),
        ("PromotionId", json!("p")),
        ("SaleMode", json!("s")),
    ]);
    let text = r#"{"AutoPay":true,"IgnoreParamValidation":true,"PromotionId":"p","SaleMode":"s","SettingResetType":1,"TargetDataDiskSize":2147483647}"#;
    child(
        TaskType::ResetInstance,
        &given,
        Value::Object(old.clone()),
        text,
        TaskParam::ResetInstance(given.clone()),
    );
    same(
        &batch::Reset {
            android_instance_ids: ids(&["acp-1"]),
            options: given,
        },
        with_instances(old, "AndroidInstanceIds", &["acp-1"]),
        r#"{"AndroidInstanceIds":["acp-1"],"AutoPay":true,"IgnoreParamValidation":true,"PromotionId":"p","SaleMode":"s","SettingResetType":1,"TargetDataDiskSize":2147483647}"#,
    );
    let some = ResetParam {
        setting_reset_type: Some(0),
        ..ResetParam::default()
    };
    child(
        TaskType::ResetInstance,
        &some,
        json!({ "SettingResetType": 0i64 }),
        r#"{"SettingResetType":0}"#,
        TaskParam::ResetInstance(some.clone()),
    );
}

#[test]
fn update_group_image() {
    let p = UpdateImageParam {
        image_id: "imgc-1".into(),
    };
    child(
        TaskType::UpdateGroupImage,
        &p,
        json!({ "ImageId": "imgc-1" }),
        r#"{"ImageId":"imgc-1"}"#,
        TaskParam::UpdateGroupImage(p.clone()),
    );
    let groups = ids(&["ag-1", "ag-2"]);
    same(
        &batch::UpdateImage {
            image_id: "imgc-1".into(),
            instance_group_ids: groups.clone(),
        },
        json!({ "ImageId": "imgc-1", "InstanceGroupIds": groups }),
        r#"{"ImageId":"imgc-1","InstanceGroupIds":["ag-1","ag-2"]}"#,
    );
}

#[test]
fn run_command() {
    // The API wrote the timeout as an i64; as a u64 it is the same text.
    let timeout_secs: u64 = 60;
    let content = "echo \"hi\"\n";
    let p = CommandParam {
        command_content: content.into(),
        timeout: 60,
    };
    child(
        TaskType::RunCommand,
        &p,
        json!({ "CommandContent": content, "Timeout": 60i64 }),
        r#"{"CommandContent":"echo \"hi\"\n","Timeout":60}"#,
        TaskParam::RunCommand(p.clone()),
    );
    // The batch keeps the command as sent (Base64 here) and its encoding.
    let raw = "ZWNobyAiaGkiCg==";
    let mut given = Map::new();
    given.insert("CommandContent".into(), json!(raw));
    given.insert("ContentEncoding".into(), json!("Base64"));
    let mut old = given.clone();
    old.insert("InstanceIds".into(), json!(["acp-1"]));
    old.insert("Timeout".into(), json!(60i64));
    same(
        &batch::RunCommand {
            command_content: raw.into(),
            content_encoding: Some("Base64".into()),
            instance_ids: ids(&["acp-1"]),
            timeout: timeout_secs,
        },
        Value::Object(old),
        r#"{"CommandContent":"ZWNobyAiaGkiCg==","ContentEncoding":"Base64","InstanceIds":["acp-1"],"Timeout":60}"#,
    );
    let mut plain = Map::new();
    plain.insert("CommandContent".into(), json!("id"));
    plain.insert("InstanceIds".into(), json!(["acp-1", "acp-2"]));
    plain.insert("Timeout".into(), json!(5i64));
    same(
        &batch::RunCommand {
            command_content: "id".into(),
            content_encoding: None,
            instance_ids: ids(&["acp-1", "acp-2"]),
            timeout: 5,
        },
        Value::Object(plain),
        r#"{"CommandContent":"id","InstanceIds":["acp-1","acp-2"],"Timeout":5}"#,
    );
}

#[test]
fn send_file() {
    let md5: Option<String> = None;
    let p = SendFileParam {
        destination: "/sdcard/a.txt".into(),
        file_md5: md5.clone(),
        upload_type: "OSS".into(),
        upload_url: "oss://b/a.txt".into(),
    };
    child(
        TaskType::SendFile,
        &p,
        json!({
            "UploadType": "OSS",
            "UploadUrl": "oss://b/a.txt",
            "Destination": "/sdcard/a.txt",
            "FileMd5": md5,
        }),
        r#"{"Destination":"/sdcard/a.txt","FileMd5":null,"UploadType":"OSS","UploadUrl":"oss://b/a.txt"}"#,
        TaskParam::SendFile(p.clone()),
    );
    let with_md5 = SendFileParam {
        file_md5: Some("0123456789abcdef0123456789abcdef".into()),
        ..p
    };
    assert_eq!(
        to_json(&with_md5),
        r#"{"Destination":"/sdcard/a.txt","FileMd5":"0123456789abcdef0123456789abcdef","UploadType":"OSS","UploadUrl":"oss://b/a.txt"}"#
    );
    // The batch: every parameter the call gave, in the order the API inserted them.
    let mut given = Map::new();
    for (k, v) in [
        ("UploadType", "OSS"),
        ("UploadUrl", "oss://b/a.txt"),
        ("UploadEndpoint", "oss-cn-hangzhou.aliyuncs.com"),
        ("SourceFilePath", "/sdcard/"),
        ("TargetFileName", "b.txt"),
        ("FileMd5", "0123456789abcdef0123456789abcdef"),
    ] {
        given.insert(k.into(), json!(v));
    }
    given.insert("AutoInstall".into(), json!(false));
    given.insert("ClientToken".into(), json!("tok"));
    given.insert("AndroidInstanceIdList".into(), json!(["acp-1"]));
    same(
        &batch::SendFile {
            android_instance_id_list: ids(&["acp-1"]),
            auto_install: Some(false),
            client_token: Some("tok".into()),
            file_md5: Some("0123456789abcdef0123456789abcdef".into()),
            source_file_path: Some("/sdcard/".into()),
            target_file_name: Some("b.txt".into()),
            upload_endpoint: Some("oss-cn-hangzhou.aliyuncs.com".into()),
            upload_type: Some("OSS".into()),
            upload_url: Some("oss://b/a.txt".into()),
        },
        Value::Object(given),
        r#"{"AndroidInstanceIdList":["acp-1"],"AutoInstall":false,"ClientToken":"tok","FileMd5":"0123456789abcdef0123456789abcdef","SourceFilePath":"/sdcard/","TargetFileName":"b.txt","UploadEndpoint":"oss-cn-hangzhou.aliyuncs.com","UploadType":"OSS","UploadUrl":"oss://b/a.txt"}"#,
    );
    let mut least = Map::new();
    least.insert("UploadType".into(), json!("DOWNLOAD_URL"));
    least.insert("UploadUrl".into(), json!("http://h/f"));
    least.insert("SourceFilePath".into(), json!("/sdcard/f"));
    least.insert("AndroidInstanceIdList".into(), json!(["acp-1"]));
    same(
        &batch::SendFile {
            android_instance_id_list: ids(&["acp-1"]),
            source_file_path: Some("/sdcard/f".into()),
            upload_type: Some("DOWNLOAD_URL".into()),
            upload_url: Some("http://h/f".into()),
            ..batch::SendFile::default()
        },
        Value::Object(least),
        r#"{"AndroidInstanceIdList":["acp-1"],"SourceFilePath":"/sdcard/f","UploadType":"DOWNLOAD_URL","UploadUrl":"http://h/f"}"#,
    );
}

#[test]
fn fetch_file() {
    let p = FetchFileParam {
        destination: "oss://b/f/acp-1/a.log".into(),
        source_file_path: "/sdcard/a.log".into(),
    };
    child(
        TaskType::FetchFile,
        &p,
        json!({ "SourceFilePath": "/sdcard/a.log", "Destination": "oss://b/f/acp-1/a.log" }),
        r#"{"Destination":"oss://b/f/acp-1/a.log","SourceFilePath":"/sdcard/a.log"}"#,
        TaskParam::FetchFile(p.clone()),
    );
    let mut given = Map::new();
    for (k, v) in [
        ("SourceFilePath", "/sdcard/a.log"),
        ("UploadType", "OSS"),
        ("UploadUrl", "oss://b/f"),
        ("UploadEndpoint", "e"),
    ] {
        given.insert(k.into(), json!(v));
    }
    given.insert("ClientToken".into(), json!("t"));
    given.insert("AndroidInstanceIdList".into(), json!(["acp-1"]));
    same(
        &batch::FetchFile {
            android_instance_id_list: ids(&["acp-1"]),
            client_token: Some("t".into()),
            source_file_path: Some("/sdcard/a.log".into()),
            upload_endpoint: Some("e".into()),
            upload_type: Some("OSS".into()),
            upload_url: Some("oss://b/f".into()),
        },
        Value::Object(given),
        r#"{"AndroidInstanceIdList":["acp-1"],"ClientToken":"t","SourceFilePath":"/sdcard/a.log","UploadEndpoint":"e","UploadType":"OSS","UploadUrl":"oss://b/f"}"#,
    );
    assert_eq!(
        to_json(&batch::FetchFile {
            android_instance_id_list: ids(&["acp-1"]),
            ..batch::FetchFile::default()
        }),
        r#"{"AndroidInstanceIdList":["acp-1"]}"#
    );
}

#[test]
fn screenshot() {
    let p = ScreenshotParam {
        destination: "oss://b/s1_acp-1.png".into(),
        screenshot_id: "s1".into(),
    };
    child(
        TaskType::Screenshot,
        &p,
        json!({ "ScreenshotId": "s1", "Destination": "oss://b/s1_acp-1.png" }),
        r#"{"Destination":"oss://b/s1_acp-1.png","ScreenshotId":"s1"}"#,
        TaskParam::Screenshot(p.clone()),
    );
    let mut old = Map::new();
    old.insert("SkipCheckPolicyConfig".into(), json!("TRUE"));
    old.insert("AndroidInstanceIdList".into(), json!(["acp-1"]));
    old.insert("OssBucketName".into(), json!("b"));
    old.insert("ScreenshotId".into(), json!("s1"));
    let typed = batch::Screenshot {
        android_instance_id_list: ids(&["acp-1"]),
        oss_bucket_name: "b".into(),
        screenshot_id: "s1".into(),
        skip_check_policy_config: Some("TRUE".into()),
    };
    same(
        &typed,
        Value::Object(old.clone()),
        r#"{"AndroidInstanceIdList":["acp-1"],"OssBucketName":"b","ScreenshotId":"s1","SkipCheckPolicyConfig":"TRUE"}"#,
    );
    old.remove("SkipCheckPolicyConfig");
    same(
        &batch::Screenshot {
            skip_check_policy_config: None,
            ..typed
        },
        Value::Object(old),
        r#"{"AndroidInstanceIdList":["acp-1"],"OssBucketName":"b","ScreenshotId":"s1"}"#,
    );
}

#[test]
fn backup_file() {
    let archived = ids(&["/sdcard", "/data/local/tmp"]);
    let exclude = ids(&["/sdcard/cache"]);
    let p = BackupParam {
        backup_file_id: "bf-1".into(),
        destination: "oss://b/bk/bf-1.tar".into(),
        exclude_source_file_path_list: exclude.clone(),
        paths: archived.clone(),
    };
    child(
        TaskType::BackupFile,
        &p,
        json!({
            "BackupFileId": "bf-1",
            "Paths": archived,
            "ExcludeSourceFilePathList": exclude,
            "Destination": "oss://b/bk/bf-1.tar",
        }),
        r#"{"BackupFileId":"bf-1","Destination":"oss://b/bk/bf-1.tar","ExcludeSourceFilePathList":["/sdcard/cache"],"Paths":["/sdcard","/data/local/tmp"]}"#,
        TaskParam::BackupFile(p.clone()),
    );
    let sources: Vec<String> = Vec::new();
    let apps = ids(&["com.example.app"]);
    let mut given = Map::new();
    for (k, v) in [
        ("BackupFilePath", "oss://b/bk"),
        ("BackupFileName", "nightly"),
        ("Description", "d"),
        ("UploadType", "OSS"),
        ("UploadEndpoint", "e"),
    ] {
        given.insert(k.into(), json!(v));
    }
    given.insert("BackupAll".into(), json!(true));
    given.insert("SourceFilePathList".into(), json!(sources));
    given.insert("ExcludeSourceFilePathList".into(), json!(exclude));
    given.insert("SourceAppList".into(), json!(apps));
    given.insert("AndroidInstanceIdList".into(), json!(["acp-1"]));
    same(
        &batch::BackupFile {
            android_instance_id_list: ids(&["acp-1"]),
            backup_all: true,
            backup_file_name: Some("nightly".into()),
            backup_file_path: Some("oss://b/bk".into()),
            description: Some("d".into()),
            exclude_source_file_path_list: exclude.clone(),
            source_app_list: apps,
            source_file_path_list: sources,
            upload_endpoint: Some("e".into()),
            upload_type: Some("OSS".into()),
        },
        Value::Object(given),
        r#"{"AndroidInstanceIdList":["acp-1"],"BackupAll":true,"BackupFileName":"nightly","BackupFilePath":"oss://b/bk","Description":"d","ExcludeSourceFilePathList":["/sdcard/cache"],"SourceAppList":["com.example.app"],"SourceFilePathList":[],"UploadEndpoint":"e","UploadType":"OSS"}"#,
    );
    assert_eq!(
        to_json(&batch::BackupFile {
            android_instance_id_list: ids(&["acp-1"]),
            backup_file_path: Some("oss://b".into()),
            source_file_path_list: ids(&["/sdcard/a"]),
            ..batch::BackupFile::default()
        }),
        r#"{"AndroidInstanceIdList":["acp-1"],"BackupAll":false,"BackupFilePath":"oss://b","ExcludeSourceFilePathList":[],"SourceAppList":[],"SourceFilePathList":["/sdcard/a"]}"#
    );
}

#[test]
fn recover_file() {
    let p = RecoverParam {
        backup_file_id: String::new(),
        source: "oss://b/x.tar".into(),
    };
    child(
        TaskType::RecoverFile,
        &p,
        json!({ "BackupFileId": "", "Source": "oss://b/x.tar" }),
        r#"{"BackupFileId":"","Source":"oss://b/x.tar"}"#,
        TaskParam::RecoverFile(p.clone()),
    );
    let mut given = Map::new();
    for (k, v) in [
        ("BackupFileId", "bf-1"),
        ("BackupFilePath", "oss://b/x.tar"),
        ("UploadType", "OSS"),
        ("UploadEndpoint", "e"),
    ] {
        given.insert(k.into(), json!(v));
    }
    given.insert("BackupAll".into(), json!(false));
    given.insert("AndroidInstanceIdList".into(), json!(["acp-1", "acp-2"]));
    same(
        &batch::RecoveryFile {
            android_instance_id_list: ids(&["acp-1", "acp-2"]),
            backup_all: Some(false),
            backup_file_id: Some("bf-1".into()),
            backup_file_path: Some("oss://b/x.tar".into()),
            upload_endpoint: Some("e".into()),
            upload_type: Some("OSS".into()),
        },
        Value::Object(given),
        r#"{"AndroidInstanceIdList":["acp-1","acp-2"],"BackupAll":false,"BackupFileId":"bf-1","BackupFilePath":"oss://b/x.tar","UploadEndpoint":"e","UploadType":"OSS"}"#,
    );
    assert_eq!(
        to_json(&batch::RecoveryFile {
            android_instance_id_list: ids(&["acp-1"]),
            backup_file_id: Some("bf-1".into()),
            ..batch::RecoveryFile::default()
        }),
        r#"{"AndroidInstanceIdList":["acp-1"],"BackupFileId":"bf-1"}"#
    );
}

#[test]
fn install_and_uninstall_app() {
    let install = InstallParam {
        app_id: 7,
        md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
        package_name: "com.example.app".into(),
        source: "oss://b/app.apk".into(),
    };
    child(
        TaskType::InstallApp,
        &install,
        json!({ "AppId": 7i64, "PackageName": "com.example.app", "Source": "oss://b/app.apk", "Md5": "d41d8cd98f00b204e9800998ecf8427e" }),
        r#"{"AppId":7,"Md5":"d41d8cd98f00b204e9800998ecf8427e","PackageName":"com.example.app","Source":"oss://b/app.apk"}"#,
        TaskParam::InstallApp(install.clone()),
    );
    let app = AppParam {
        app_id: 7,
        package_name: "com.example.app".into(),
    };
    child(
        TaskType::UninstallApp,
        &app,
        json!({ "AppId": 7i64, "PackageName": "com.example.app" }),
        r#"{"AppId":7,"PackageName":"com.example.app"}"#,
        TaskParam::UninstallApp(app.clone()),
    );
    let app_ids: Vec<i64> = vec![7, 3];
    let instances = ids(&["acp-1"]);
    let groups: Vec<String> = Vec::new();
    same(
        &batch::InstallOrUninstall {
            app_id_list: ids(&["7", "3"]),
            instance_group_id_list: groups.clone(),
            instance_id_list: instances.clone(),
        },
        json!({
            "AppIdList": app_ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "InstanceIdList": instances,
            "InstanceGroupIdList": groups,
        }),
        r#"{"AppIdList":["7","3"],"InstanceGroupIdList":[],"InstanceIdList":["acp-1"]}"#,
    );
}

#[test]
fn operate_app() {
    let app = AppParam {
        app_id: 9,
        package_name: "com.example.app".into(),
    };
    let text = r#"{"AppId":9,"PackageName":"com.example.app"}"#;
    for (task_type, back) in [
        (TaskType::StartApp, TaskParam::StartApp(app.clone())),
        (TaskType::StopApp, TaskParam::StopApp(app.clone())),
        (TaskType::RestartApp, TaskParam::RestartApp(app.clone())),
    ] {
        child(
            task_type,
            &app,
            json!({ "AppId": 9i64, "PackageName": "com.example.app" }),
            text,
            back.clone(),
        );
        assert_eq!(back.app_id(), Some(9));
    }
    let instances = ids(&["acp-1", "acp-2"]);
    same(
        &batch::OperateApp {
            app_id: 9,
            instance_id_list: instances.clone(),
            operate_type: TaskType::StopApp.as_str().into(),
        },
        json!({ "AppId": 9i64, "InstanceIdList": instances, "OperateType": TaskType::StopApp.as_str() }),
        r#"{"AppId":9,"InstanceIdList":["acp-1","acp-2"],"OperateType":"StopApp"}"#,
    );
}

#[test]
fn a_retry_names_the_batch_it_retries_in_its_sorted_place() {
    let old = r#"{"AndroidInstanceIds":["acp-1"],"ForceStop":true}"#;
    assert_eq!(
        batch::retry_of(old, "t-1"),
        r#"{"AndroidInstanceIds":["acp-1"],"ForceStop":true,"RetryOf":"t-1"}"#
    );
    assert_eq!(
        batch::retry_of(r#"{"AppId":9,"SkipX":"1"}"#, "t-2"),
        r#"{"AppId":9,"RetryOf":"t-2","SkipX":"1"}"#
    );
    // A retry of a retry names the last one.
    assert_eq!(
        batch::retry_of(r#"{"A":1,"RetryOf":"t-1"}"#, "t-2"),
        r#"{"A":1,"RetryOf":"t-2"}"#
    );
    assert_eq!(batch::retry_of("not json", "t-3"), r#"{"RetryOf":"t-3"}"#);
    assert_eq!(batch::retry_of("[1]", "t-3"), r#"{"RetryOf":"t-3"}"#);
}

#[test]
fn app_id_is_only_for_app_tasks() {
    assert_eq!(
        TaskParam::parse(
            TaskType::InstallApp,
            r#"{"AppId":4,"Md5":"","PackageName":"p.q","Source":"http://h/a.apk"}"#
        )
        .unwrap()
        .app_id(),
        Some(4)
    );
    assert_eq!(
        TaskParam::parse(TaskType::StartInstance, "{}")
            .unwrap()
            .app_id(),
        None
    );
}

#[test]
fn a_param_that_is_not_its_types_is_refused_with_the_reason() {
    let refused = |t: TaskType, json: &str| TaskParam::parse(t, json).unwrap_err();
    let e = refused(TaskType::RunCommand, r#"{"Timeout":60}"#);
    assert_eq!(e.task_type, TaskType::RunCommand);
    assert!(e.reason.contains("missing field `CommandContent`"), "{e}");
    assert!(
        e.to_string()
            .starts_with("The task's Param is not valid for RunCommand: missing field"),
        "{e}"
    );
    let e = refused(TaskType::StopInstance, r#"{"ForceStop":"yes"}"#);
    assert!(e.reason.contains("invalid type: string \"yes\""), "{e}");
    assert!(refused(TaskType::SendFile, "").reason.contains("EOF"));
    assert!(
        refused(TaskType::RebootInstance, "null")
            .reason
            .contains("null")
    );
    refused(TaskType::CreateInstance, "not json");
    refused(
        TaskType::RunCommand,
        r#"{"CommandContent":"id","Timeout":-1}"#,
    );
    refused(TaskType::UpdateGroupImage, "{}");
    refused(
        TaskType::BackupFile,
        r#"{"BackupFileId":"b","Destination":"d","ExcludeSourceFilePathList":[],"Paths":"/sdcard"}"#,
    );
    refused(
        TaskType::InstallApp,
        r#"{"AppId":"7","Md5":"","PackageName":"p","Source":"s"}"#,
    );
    // Keys it does not know are no reason to refuse (a batch copied into a child, say).
    assert_eq!(
        TaskParam::parse(
            TaskType::StopInstance,
            r#"{"ForceStop":true,"RetryOf":"t"}"#
        ),
        Ok(TaskParam::StopInstance(StopParam {
            force_stop: Some(true),
            sale_mode: None
        }))
    );
}

/// Every task type has a `Param` type, and an empty object is enough only for those whose keys
/// are all optional.
#[test]
fn every_task_type_parses_and_only_optional_ones_take_an_empty_object() {
    let optional = [
        TaskType::CreateInstance,
        TaskType::DeleteInstance,
        TaskType::StartInstance,
        TaskType::StopInstance,
        TaskType::RebootInstance,
        TaskType::ResetInstance,
    ];
    for t in TaskType::ALL {
        assert_eq!(
            TaskParam::parse(*t, "{}").is_ok(),
            optional.contains(t),
            "{t}"
        );
    }
}
