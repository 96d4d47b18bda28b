//! Tests of the simulated fleet through the `Backend` trait: the shell as RunCommand sees it,
//! SendFile and FetchFile, path safety, timeouts, faults, and reset.

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::*;
use cloudphone_backend::AttemptRef;

fn phone(id: &str) -> InstanceRef {
    phone_on(id, ANDROID_14)
}

fn phone_on(id: &str, image: &str) -> InstanceRef {
    InstanceRef {
        id: id.into(),
        account_id: "acct-a".into(),
        name: "p".into(),
        image_id: image.into(),
        spec: "acp.basic.small".into(),
        attempt: None,
        ..InstanceRef::default()
    }
}

fn sim(root: &Path) -> SimBackend {
    SimBackend::new(SimConfig {
        root: root.to_path_buf(),
        delay: Some(Duration::from_millis(1)),
        record_executions: false,
    })
}

/// A created phone on a fresh sim.
async fn setup() -> (tempfile::TempDir, SimBackend, InstanceRef) {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(&dir.path().join("sim"));
    let p = phone("acp-a");
    sim.create(&p).await.unwrap();
    (dir, sim, p)
}

async fn sh(sim: &SimBackend, p: &InstanceRef, cmd: &str) -> (String, i32) {
    let out = sim
        .run_command(p, cmd, Duration::from_secs(10))
        .await
        .unwrap();
    (
        String::from_utf8_lossy(&out.output).into_owned(),
        out.exit_code,
    )
}

async fn push_bytes(sim: &SimBackend, p: &InstanceRef, dest: &str, bytes: &[u8]) -> OpResult<u64> {
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), bytes).unwrap();
    sim.push_file(p, local.path(), dest).await
}

#[tokio::test]
async fn create_reset_delete_touch_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    let p = phone("acp-a");
    sim.create(&p).await.unwrap();
    let props = std::fs::read_to_string(dir.path().join("acp-a/props.json")).unwrap();
    assert!(
        props.contains(r#""ro.build.version.release":"14""#),
        "{props}"
    );
    std::fs::write(dir.path().join("acp-a/data/sdcard/x.txt"), "hello").unwrap();
    sim.reset(&p, ANDROID_14).await.unwrap();
    assert!(!dir.path().join("acp-a/data/sdcard/x.txt").exists());
    sim.reset(&p, ANDROID_12).await.unwrap();
    let props = std::fs::read_to_string(dir.path().join("acp-a/props.json")).unwrap();
    assert!(
        props.contains(r#""ro.build.version.release":"12""#),
        "{props}"
    );
    sim.delete(&p).await.unwrap();
    assert!(!dir.path().join("acp-a").exists());
}

#[tokio::test]
async fn faults_match_type_and_instance_and_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    sim.inject_fault(Fault {
        account_id: "acct-a".into(),
        task_type: Some(TaskType::RebootInstance),
        instance_id: Some("acp-b".into()),
        code: TaskErrorCode::OperationFailed,
        message: "boom".into(),
        remaining: Some(1),
        percent: None,
    })
    .unwrap();
    assert!(sim.reboot(&phone("acp-a"), false).await.is_ok());
    assert!(sim.start(&phone("acp-b")).await.is_ok());
    let err = sim.reboot(&phone("acp-b"), false).await.unwrap_err();
    assert_eq!(err.code, TaskErrorCode::OperationFailed);
    assert!(sim.reboot(&phone("acp-b"), false).await.is_ok());
}

/// A fault belongs to the account that injected it: without an instance it fails that account's
/// phones only, and clearing removes that account's faults only.
#[tokio::test]
async fn faults_touch_only_their_own_account() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    let mine = phone("acp-a");
    let theirs = InstanceRef {
        account_id: "acct-b".into(),
        ..phone("acp-b")
    };
    for account in ["acct-a", "acct-b"] {
        sim.inject_fault(Fault {
            account_id: account.into(),
            task_type: Some(TaskType::RebootInstance),
            instance_id: None,
            code: TaskErrorCode::OperationFailed,
            message: format!("by {account}"),
            remaining: None,
            percent: None,
        })
        .unwrap();
    }
    let e = sim.reboot(&theirs, false).await.unwrap_err();
    assert_eq!(e.message, "by acct-b");
    sim.clear_faults("acct-b");
    assert!(sim.reboot(&theirs, false).await.is_ok());
    let e = sim.reboot(&mine, false).await.unwrap_err();
    assert_eq!(e.message, "by acct-a", "another account's clear left it");
}

#[tokio::test]
async fn faults_apply_to_commands_and_file_transfers() {
    let (_dir, sim, p) = setup().await;
    for (op, code) in [
        (TaskType::RunCommand, TaskErrorCode::InstanceUnreachable),
        (TaskType::SendFile, TaskErrorCode::SendFileFailed),
        (TaskType::FetchFile, TaskErrorCode::FetchFileFailed),
    ] {
        sim.inject_fault(Fault {
            account_id: "acct-a".into(),
            task_type: Some(op),
            instance_id: Some(p.id.clone()),
            code,
            message: "injected".into(),
            remaining: Some(1),
            percent: None,
        })
        .unwrap();
    }
    let local = tempfile::NamedTempFile::new().unwrap();
    let e = sim
        .run_command(&p, "echo hi", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        BackendError::new(TaskErrorCode::InstanceUnreachable, "injected")
    );
    let e = sim
        .push_file(&p, local.path(), "/sdcard/a")
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    let e = sim
        .pull_file(&p, "/sdcard/a", local.path())
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::FetchFileFailed);
    // Each fault was used up once; the operations work again.
    assert_eq!(sh(&sim, &p, "echo hi").await, ("hi\n".into(), 0));
    sim.push_file(&p, local.path(), "/sdcard/a").await.unwrap();
    sim.pull_file(&p, "/sdcard/a", local.path()).await.unwrap();
}

#[tokio::test]
async fn a_phone_that_does_not_exist_is_unreachable() {
    let (_dir, sim, _) = setup().await;
    let ghost = phone("acp-ghost");
    let local = tempfile::NamedTempFile::new().unwrap();
    let e = sim
        .run_command(&ghost, "true", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::InstanceUnreachable);
    let e = sim
        .push_file(&ghost, local.path(), "/sdcard/x")
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::InstanceUnreachable);
    let e = sim
        .pull_file(&ghost, "/sdcard/x", local.path())
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::InstanceUnreachable);
}

#[tokio::test]
async fn echo_separators_and_exit_codes() {
    let (_dir, sim, p) = setup().await;
    assert_eq!(
        sh(&sim, &p, "echo hello world").await,
        ("hello world\n".into(), 0)
    );
    assert_eq!(sh(&sim, &p, "echo -n a; echo b").await, ("ab\n".into(), 0));
    assert_eq!(sh(&sim, &p, "echo -e 'a\\tb'").await, ("a\tb\n".into(), 0));
    assert_eq!(
        sh(&sim, &p, "echo 'a  b' \"c  d\" e\\ \\ f").await,
        ("a  b c  d e  f\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p, "echo \"it's\" 'say \"hi\"'").await,
        ("it's say \"hi\"\n".into(), 0)
    );
    assert_eq!(sh(&sim, &p, "").await, ("".into(), 0));
    assert_eq!(sh(&sim, &p, "false").await, ("".into(), 1));
    assert_eq!(sh(&sim, &p, "false; true").await, ("".into(), 0));
    assert_eq!(sh(&sim, &p, "true; false").await, ("".into(), 1));
    assert_eq!(sh(&sim, &p, "false && echo no").await, ("".into(), 1));
    assert_eq!(sh(&sim, &p, "true && echo yes").await, ("yes\n".into(), 0));
    assert_eq!(
        sh(&sim, &p, "false || echo rescued").await,
        ("rescued\n".into(), 0)
    );
    assert_eq!(sh(&sim, &p, "true || echo no").await, ("".into(), 0));
    assert_eq!(
        sh(&sim, &p, "false && echo a || echo b").await,
        ("b\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p, "false; echo $?; true; echo \"$?\"").await,
        ("1\n0\n".into(), 0)
    );
    assert_eq!(sh(&sim, &p, "echo a\necho b").await, ("a\nb\n".into(), 0));
    assert_eq!(
        sh(&sim, &p, "echo $HOME $EXTERNAL_STORAGE $NOPE.").await,
        ("/ /sdcard .\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p, "exit 3; echo unreachable").await,
        ("".into(), 3)
    );
    assert_eq!(sh(&sim, &p, "echo a && exit 300").await, ("a\n".into(), 44));
    assert_eq!(sh(&sim, &p, "false; exit").await, ("".into(), 1));
    assert_eq!(sh(&sim, &p, "true; exit").await, ("".into(), 0));
    assert_eq!(sh(&sim, &p, "pwd").await, ("/\n".into(), 0));
    assert_eq!(
        sh(&sim, &p, ": && /system/bin/echo x").await,
        ("x\n".into(), 0)
    );
}

#[tokio::test]
async fn unknown_commands_are_not_found_with_127() {
    let (_dir, sim, p) = setup().await;
    assert_eq!(
        sh(&sim, &p, "reboot").await,
        ("sh: reboot: not found\n".into(), 127)
    );
    assert_eq!(
        sh(&sim, &p, "echo before; rm-rf / ; echo after").await,
        ("before\nsh: rm-rf: not found\nafter\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p, "nope && echo no; echo $?").await,
        ("sh: nope: not found\n127\n".into(), 0)
    );
    // A host binary by its full path is just another unknown name.
    assert_eq!(sh(&sim, &p, "/bin/sh -c id").await.1, 127);
    assert_eq!(sh(&sim, &p, "/usr/bin/id").await.1, 127);
}

#[tokio::test]
async fn syntax_errors_are_reported_and_nothing_runs() {
    let (_dir, sim, p) = setup().await;
    let (out, code) = sh(&sim, &p, "touch /sdcard/made; ls | grep x").await;
    assert_eq!(code, 2);
    assert!(out.starts_with("sh: syntax error: '|' (pipes)"), "{out}");
    assert_eq!(sh(&sim, &p, "ls /sdcard/made").await.1, 1, "nothing ran");
    let (out, code) = sh(&sim, &p, "echo 'open").await;
    assert_eq!(
        (out.as_str(), code),
        ("sh: syntax error: no closing quote\n", 2)
    );
}

#[tokio::test]
async fn a_one_mebibyte_command_runs() {
    let (_dir, sim, p) = setup().await;
    let big = "x".repeat(1 << 20);
    let (out, code) = sh(&sim, &p, &format!("echo {big}")).await;
    assert_eq!(code, 0);
    assert_eq!(out.len(), (1 << 20) + 1);
}

#[tokio::test]
async fn getprop_shows_the_phone_and_its_image() {
    let (_dir, sim, p14) = setup().await;
    let p12 = phone_on("acp-twelve", ANDROID_12);
    sim.create(&p12).await.unwrap();

    assert_eq!(
        sh(&sim, &p14, "getprop ro.build.version.release").await,
        ("14\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p12, "getprop ro.build.version.release").await,
        ("12\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p14, "getprop ro.build.version.sdk").await.0,
        "34\n"
    );
    assert_eq!(
        sh(&sim, &p12, "getprop ro.build.version.sdk").await.0,
        "31\n"
    );
    assert_eq!(
        sh(&sim, &p12, "getprop ro.serialno").await.0,
        "acp-twelve\n"
    );
    assert_eq!(sh(&sim, &p14, "getprop ro.serialno").await.0, "acp-a\n");
    assert_eq!(
        sh(&sim, &p14, "getprop no.such.prop").await,
        ("\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p14, "getprop no.such.prop dflt").await.0,
        "dflt\n"
    );

    let (all, code) = sh(&sim, &p14, "getprop").await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = all.lines().collect();
    assert!(lines.contains(&"[ro.build.version.release]: [14]"), "{all}");
    assert!(
        lines.contains(&"[ro.product.model]: [cloudphone-sim]"),
        "{all}"
    );
    assert!(lines.contains(&"[ro.serialno]: [acp-a]"), "{all}");
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with('[') && l.contains("]: [") && l.ends_with(']'))
    );
}

#[tokio::test]
async fn pm_lists_and_locates_packages() {
    let (_dir, sim, p) = setup().await;
    let (all, code) = sh(&sim, &p, "pm list packages").await;
    assert_eq!(code, 0);
    for name in [
        "com.android.settings",
        "com.android.systemui",
        "com.android.launcher3",
        "com.android.chrome",
        "com.android.phone",
        "com.android.providers.media",
    ] {
        assert!(
            all.lines().any(|l| l == format!("package:{name}")),
            "{name} in {all}"
        );
    }
    assert_eq!(sh(&sim, &p, "pm list packages -3").await, ("".into(), 0));
    assert_eq!(
        sh(&sim, &p, "pm list packages settings").await,
        ("package:com.android.settings\n".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p, "pm path com.android.settings").await,
        (
            "package:/system_ext/priv-app/Settings/Settings.apk\n".into(),
            0
        )
    );
    assert_eq!(
        sh(&sim, &p, "pm path com.example.nope").await,
        ("".into(), 1)
    );
    assert_eq!(
        sh(&sim, &p, "pm frob").await,
        ("Unknown command: frob\n".into(), 255)
    );

    assert_eq!(
        sim.install_package(&p, "com.example.app").await.unwrap(),
        "/data/app/com.example.app-1/base.apk"
    );
    assert_eq!(
        sh(&sim, &p, "pm list packages -3").await,
        ("package:com.example.app\n".into(), 0)
    );
    let (system, _) = sh(&sim, &p, "pm list packages -s").await;
    assert!(!system.contains("com.example.app"), "{system}");
    assert!(system.contains("package:com.android.chrome\n"), "{system}");
    assert_eq!(
        sh(&sim, &p, "pm list packages -f example").await.0,
        "package:/data/app/com.example.app-1/base.apk=com.example.app\n"
    );
    assert_eq!(
        sh(&sim, &p, "pm path com.example.app").await.0,
        "package:/data/app/com.example.app-1/base.apk\n"
    );
    assert_eq!(
        sim.install_package(&p, "../evil").await.unwrap_err().code,
        TaskErrorCode::InstallAppFailed
    );
    assert!(sim.uninstall_package(&p, "com.example.app").await.unwrap());
    assert_eq!(sh(&sim, &p, "pm list packages -3").await.0, "");
}

/// `pm install PATH` reads the APK's package name, as Android's package manager does; what
/// it installs is what InstallApp's packages are (`pm list packages -3`, UninstallApp).
#[tokio::test]
async fn pm_installs_and_uninstalls_apks_on_the_phone() {
    let (dir, sim, p) = setup().await;
    let apk = dir.path().join("app.apk");
    cloudphone_apk::testing::apk(&apk, "com.example.shelled", 3, "1.0").unwrap();
    push_bytes(
        &sim,
        &p,
        "/data/local/tmp/app.apk",
        &std::fs::read(&apk).unwrap(),
    )
    .await
    .unwrap();
    let (out, code) = sh(&sim, &p, "pm install -r /data/local/tmp/app.apk").await;
    assert_eq!((out.as_str(), code), ("Success\n", 0));
    let (out, _) = sh(&sim, &p, "cmd package list packages -3").await;
    assert_eq!(out, "package:com.example.shelled\n");
    assert!(
        sim.phone_state(&p)
            .await
            .unwrap()
            .package("com.example.shelled")
            .is_some()
    );

    // Relative to the working directory, like any path of the shell.
    let (out, code) = sh(&sim, &p, "cd /data/local/tmp && pm install app.apk").await;
    assert_eq!((out.as_str(), code), ("Success\n", 0));

    let (out, code) = sh(&sim, &p, "pm install /sdcard/none.apk").await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with("Error: Unable to open file: /sdcard/none.apk"),
        "{out}"
    );
    push_bytes(&sim, &p, "/sdcard/bad.apk", b"not a zip")
        .await
        .unwrap();
    let (out, code) = sh(&sim, &p, "pm install /sdcard/bad.apk").await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with("Failure [INSTALL_PARSE_FAILED_NOT_APK"),
        "{out}"
    );
    let (out, code) = sh(&sim, &p, "pm install -S 10").await;
    assert_eq!(code, 1, "{out}");

    let (out, code) = sh(&sim, &p, "pm uninstall com.example.shelled").await;
    assert_eq!((out.as_str(), code), ("Success\n", 0));
    let (out, code) = sh(&sim, &p, "pm uninstall com.example.shelled").await;
    assert_eq!(
        (out.as_str(), code),
        ("Failure [DELETE_FAILED_INTERNAL_ERROR]\n", 1)
    );
    let (_, code) = sh(&sim, &p, "pm uninstall com.android.settings").await;
    assert_eq!(code, 1, "system packages stay");
    let (out, code) = sh(&sim, &p, "cmd nosuch").await;
    assert_eq!(
        (out.as_str(), code),
        ("cmd: Can't find service: nosuch\n", 20)
    );
}

/// Which parts of a command's output were stderr is kept beside the merged output (what
/// `adb shell` separates under shell protocol v2).
#[tokio::test]
async fn stderr_is_marked_in_the_merged_output() {
    let (_dir, sim, p) = setup().await;
    let dir = sim.phone(&p.id);
    let ran = shell::Session::new(&dir)
        .run("echo out; nosuch; ls /none; echo end", 1 << 20)
        .await
        .unwrap();
    let pieces: Vec<(bool, String)> = ran
        .pieces()
        .into_iter()
        .map(|(e, b)| (e, String::from_utf8_lossy(b).into_owned()))
        .collect();
    assert_eq!(
        pieces,
        [
            (false, "out\n".to_string()),
            (
                true,
                "sh: nosuch: not found\nls: /none: No such file or directory\n".to_string()
            ),
            (false, "end\n".to_string()),
        ]
    );
    // A session keeps its directory and `$?` from one script to the next.
    let mut session = shell::Session::new(&dir);
    session.run("cd /sdcard; false", 1024).await.unwrap();
    let ran = session.run("echo $?; pwd", 1024).await.unwrap();
    assert_eq!(ran.output, b"1\n/sdcard\n");
    assert!(session.run("exit 4", 1024).await.unwrap().exited);
}

#[tokio::test]
async fn am_starts_and_stops_apps() {
    let (_dir, sim, p) = setup().await;
    let (out, code) = sh(&sim, &p, "am start -n com.android.settings/.Settings").await;
    assert_eq!(
        (out.as_str(), code),
        (
            "Starting: Intent { cmp=com.android.settings/.Settings }\n",
            0
        )
    );
    let state = sim.phone_state(&p).await.unwrap();
    assert_eq!(state.foreground.as_deref(), Some("com.android.settings"));
    assert!(state.running.contains(&"com.android.settings".to_string()));

    let (out, code) = sh(&sim, &p, "am start com.android.chrome").await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        sim.phone_state(&p).await.unwrap().foreground.as_deref(),
        Some("com.android.chrome")
    );

    let (out, code) = sh(&sim, &p, "am start -n com.example.nope/.Main").await;
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "Starting: Intent { cmp=com.example.nope/.Main }\nError type 3\n\
         Error: Activity class {com.example.nope/com.example.nope.Main} does not exist.\n"
    );
    let (out, code) = sh(&sim, &p, "am start com.example.nope").await;
    assert_eq!(code, 1);
    assert!(
        out.contains("Error: Activity not started, unable to resolve Intent { act=android.intent.action.MAIN cat=[android.intent.category.LAUNCHER] flg=0x10000000 pkg=com.example.nope }"),
        "{out}"
    );
    assert_eq!(
        sim.phone_state(&p).await.unwrap().foreground.as_deref(),
        Some("com.android.chrome"),
        "a failed start changes nothing"
    );

    assert_eq!(
        sh(&sim, &p, "am force-stop com.android.chrome").await,
        ("".into(), 0)
    );
    let state = sim.phone_state(&p).await.unwrap();
    assert!(!state.running.contains(&"com.android.chrome".to_string()));
    assert!(state.running.contains(&"com.android.settings".to_string()));
    assert_eq!(state.foreground.as_deref(), Some(phone::LAUNCHER));
    assert_eq!(sh(&sim, &p, "am force-stop com.example.nope").await.1, 0);

    // The phone's power follows its apps.
    sim.stop(&p, false).await.unwrap();
    let state = sim.phone_state(&p).await.unwrap();
    assert!(state.running.is_empty() && state.foreground.is_none());
    sim.start(&p).await.unwrap();
    assert_eq!(
        sim.phone_state(&p).await.unwrap().foreground.as_deref(),
        Some(phone::LAUNCHER)
    );
}

#[tokio::test]
async fn id_matches_adb_shell() {
    let (_dir, sim, p) = setup().await;
    let (out, code) = sh(&sim, &p, "id").await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("uid=2000(shell) gid=2000(shell) groups=2000(shell),"),
        "{out}"
    );
    assert_eq!(sh(&sim, &p, "id -u").await.0, "2000\n");
    assert_eq!(sh(&sim, &p, "id -un").await.0, "shell\n");
}

#[tokio::test]
async fn ls_and_cat_read_the_phones_files() {
    let (_dir, sim, p) = setup().await;
    push_bytes(&sim, &p, "/sdcard/b.txt", b"bee").await.unwrap();
    push_bytes(&sim, &p, "/sdcard/a.txt", b"ay").await.unwrap();
    push_bytes(&sim, &p, "/sdcard/.hidden", b"").await.unwrap();

    assert_eq!(
        sh(&sim, &p, "ls /sdcard").await,
        (
            "DCIM\nDocuments\nDownload\nMovies\nMusic\nPictures\na.txt\nb.txt\n".into(),
            0
        )
    );
    let (out, _) = sh(&sim, &p, "ls -a /sdcard").await;
    assert!(out.starts_with(".\n..\n.hidden\nDCIM\n"), "{out}");
    assert_eq!(sh(&sim, &p, "ls").await.0, "data\nsdcard\n");
    assert_eq!(
        sh(&sim, &p, "cd /sdcard && ls a.txt && pwd").await.0,
        "a.txt\n/sdcard\n"
    );
    assert_eq!(sh(&sim, &p, "ls /sdcard/a.txt").await.0, "/sdcard/a.txt\n");

    let (long, code) = sh(&sim, &p, "ls -l /sdcard").await;
    assert_eq!(code, 0);
    assert!(long.starts_with("total "), "{long}");
    let row = long.lines().find(|l| l.ends_with(" b.txt")).unwrap();
    assert!(row.starts_with("-rw"), "{row}");
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[2..5], ["shell", "shell", "3"], "{row}");
    assert!(
        long.lines()
            .any(|l| l.starts_with('d') && l.ends_with(" DCIM")),
        "{long}"
    );

    assert_eq!(
        sh(&sim, &p, "ls /nope").await,
        ("ls: /nope: No such file or directory\n".into(), 1)
    );
    assert_eq!(
        sh(&sim, &p, "ls /sdcard/a.txt /nope").await,
        (
            "ls: /nope: No such file or directory\n/sdcard/a.txt\n".into(),
            1
        )
    );
    let (two, _) = sh(&sim, &p, "ls /sdcard/Music /data").await;
    assert_eq!(two, "/data:\nlocal\n\n/sdcard/Music:\n");

    assert_eq!(
        sh(&sim, &p, "cat /sdcard/a.txt /sdcard/b.txt").await,
        ("aybee".into(), 0)
    );
    assert_eq!(
        sh(&sim, &p, "cat /sdcard/nope").await,
        ("cat: /sdcard/nope: No such file or directory\n".into(), 1)
    );
    assert_eq!(
        sh(&sim, &p, "cat /sdcard").await,
        ("cat: /sdcard: Is a directory\n".into(), 1)
    );
    assert_eq!(
        sh(&sim, &p, "cat /sdcard/a.txt /nope; echo \" $?\"")
            .await
            .0,
        "aycat: /nope: No such file or directory\n 1\n"
    );
}

#[tokio::test]
async fn mkdir_touch_rm_change_files() {
    let (_dir, sim, p) = setup().await;
    let script = "mkdir -p /sdcard/x/y && touch /sdcard/x/y/f && ls /sdcard/x/y";
    assert_eq!(sh(&sim, &p, script).await, ("f\n".into(), 0));
    assert_eq!(
        sh(&sim, &p, "mkdir /sdcard/x").await,
        ("mkdir: /sdcard/x: File exists\n".into(), 1)
    );
    assert_eq!(
        sh(&sim, &p, "rm /sdcard/x").await,
        ("rm: /sdcard/x: Is a directory\n".into(), 1)
    );
    assert_eq!(sh(&sim, &p, "rm -r /sdcard/x && ls /sdcard/x").await.1, 1);
    assert_eq!(sh(&sim, &p, "rm -f /sdcard/none").await.1, 0);
    assert_eq!(sh(&sim, &p, "rm -rf /sdcard/..").await.1, 1);
    assert_eq!(
        sh(&sim, &p, "ls /").await.0,
        "data\nsdcard\n",
        "root survives"
    );
}

#[tokio::test]
async fn sleep_really_waits_and_a_timeout_cuts_it() {
    let (_dir, sim, p) = setup().await;
    let t = Instant::now();
    assert_eq!(
        sh(&sim, &p, "sleep 0.2 && echo done").await,
        ("done\n".into(), 0)
    );
    assert!(t.elapsed() >= Duration::from_millis(200));

    let t = Instant::now();
    let e = sim
        .run_command(&p, "sleep 5; echo late", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::CommandTimeout);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    let e = sim
        .run_command(
            &p,
            "sleep 99999999999999999999999",
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::CommandTimeout);
    assert_eq!(
        sh(&sim, &p, "sleep abc").await,
        ("sleep: invalid time interval 'abc'\n".into(), 1)
    );
}

#[tokio::test]
async fn output_beyond_the_cap_is_dropped_and_noted() {
    let (_dir, sim, p) = setup().await;
    push_bytes(&sim, &p, "/sdcard/big", &vec![b'z'; 100_000])
        .await
        .unwrap();
    let dir = sim.existing(&p).await.unwrap();
    let out = shell::run(&dir, "cat /sdcard/big; echo tail; exit 7", 1000)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 7, "the script runs on past the cap");
    assert_eq!(&out.output[..1000], &[b'z'; 1000][..]);
    let rest = String::from_utf8_lossy(&out.output[1000..]).into_owned();
    assert_eq!(
        rest,
        "\n[output truncated: the simulated shell keeps at most 1000 bytes]\n"
    );
}

#[tokio::test]
async fn pushed_bytes_are_what_cat_shows_and_pull_returns() {
    let (dir, sim, p) = setup().await;
    let n = push_bytes(
        &sim,
        &p,
        "/sdcard/Download/deep/new/hello.txt",
        b"hi there\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 9);
    assert_eq!(
        sh(&sim, &p, "cat /sdcard/Download/deep/new/hello.txt").await,
        ("hi there\n".into(), 0)
    );
    // Pushing again replaces the file.
    push_bytes(&sim, &p, "sdcard/Download/deep/new/hello.txt", b"v2")
        .await
        .unwrap();
    assert_eq!(
        sh(&sim, &p, "cat /sdcard/Download/deep/new/hello.txt")
            .await
            .0,
        "v2"
    );

    // A few MB of varied bytes round-trip exactly.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = dir.path().join("big.bin");
    std::fs::write(&local, &big).unwrap();
    assert_eq!(
        sim.push_file(&p, &local, "/data/local/tmp/big.bin")
            .await
            .unwrap(),
        3_000_000
    );
    let back = dir.path().join("back.bin");
    assert_eq!(
        sim.pull_file(&p, "/data/local/tmp/big.bin", &back)
            .await
            .unwrap(),
        3_000_000
    );
    assert_eq!(
        Sha256::digest(std::fs::read(&back).unwrap()),
        Sha256::digest(&big)
    );
    let (out, _) = sh(&sim, &p, "ls -a /data/local/tmp").await;
    assert_eq!(out, ".\n..\nbig.bin\n", "no temporary files are left");
}

#[tokio::test]
async fn push_and_pull_refuse_bad_paths_clearly() {
    let (dir, sim, p) = setup().await;
    let local = dir.path().join("l");
    std::fs::write(&local, "x").unwrap();

    let e = sim.push_file(&p, &local, "/sdcard").await.unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    assert!(e.message.contains("is a directory"), "{e}");
    let e = sim.push_file(&p, &local, "/").await.unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    let e = sim.push_file(&p, &local, "/sdcard/a\0b").await.unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    assert!(e.message.contains("NUL"), "{e}");
    let e = sim.push_file(&p, &local, "").await.unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    sim.push_file(&p, &local, "/sdcard/file").await.unwrap();
    let e = sim
        .push_file(&p, &local, "/sdcard/file/under")
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);

    let out = dir.path().join("out");
    let e = sim
        .pull_file(&p, "/sdcard/missing.txt", &out)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        BackendError::new(
            TaskErrorCode::FetchFileFailed,
            "No such file or directory: /sdcard/missing.txt"
        )
    );
    let e = sim.pull_file(&p, "/sdcard", &out).await.unwrap_err();
    assert_eq!(e.code, TaskErrorCode::FetchFileFailed);
    assert!(e.message.contains("is a directory"), "{e}");
    let e = sim.pull_file(&p, "/x\0", &out).await.unwrap_err();
    assert_eq!(e.code, TaskErrorCode::FetchFileFailed);
    assert!(!out.exists());
}

#[tokio::test]
async fn paths_never_leave_the_phone() {
    let (dir, sim, p) = setup().await;
    let data = dir.path().join("sim/acp-a/data");
    // A host file next to the phones, which an escape would reach.
    let secret = dir.path().join("sim/secret.txt");
    std::fs::write(&secret, "host secret").unwrap();

    for escape in [
        "../../secret.txt",
        "/../../secret.txt",
        "/sdcard/../../../secret.txt",
    ] {
        let (out, code) = sh(&sim, &p, &format!("cat {escape}")).await;
        assert_eq!(code, 1, "{escape}: {out}");
        assert!(!out.contains("host secret"), "{escape}: {out}");
        let e = sim
            .pull_file(&p, escape, &dir.path().join("o"))
            .await
            .unwrap_err();
        assert_eq!(e.code, TaskErrorCode::FetchFileFailed, "{escape}");
    }
    // Absolute host paths are paths on the phone, where they do not exist.
    assert_eq!(
        sh(&sim, &p, "cat /etc/passwd").await,
        ("cat: /etc/passwd: No such file or directory\n".into(), 1)
    );
    assert_eq!(
        sh(&sim, &p, &format!("cat {}", secret.display())).await.1,
        1
    );
    assert_eq!(sh(&sim, &p, "ls /..").await.0, "data\nsdcard\n");
    assert_eq!(sh(&sim, &p, "cd ../../.. && pwd").await.0, "/\n");

    // Writes with `..` land inside the phone.
    push_bytes(&sim, &p, "../../secret.txt", b"overwritten?")
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
    assert_eq!(
        std::fs::read_to_string(data.join("secret.txt")).unwrap(),
        "overwritten?"
    );
    assert_eq!(sh(&sim, &p, "mkdir ../../esc && touch /../x").await.1, 0);
    assert!(data.join("esc").is_dir() && data.join("x").is_file());
    assert!(!dir.path().join("esc").exists() && !dir.path().join("x").exists());
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_planted_in_the_data_dir_are_not_followed() {
    let (dir, sim, p) = setup().await;
    let data = dir.path().join("sim/acp-a/data");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "host secret").unwrap();
    std::os::unix::fs::symlink(&outside, data.join("sdcard/link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), data.join("sdcard/file")).unwrap();

    for path in ["/sdcard/link/secret.txt", "/sdcard/file"] {
        let (out, code) = sh(&sim, &p, &format!("cat {path}")).await;
        assert_eq!(
            (out.as_str(), code),
            (format!("cat: {path}: Permission denied\n").as_str(), 1)
        );
        let e = sim
            .pull_file(&p, path, &dir.path().join("o"))
            .await
            .unwrap_err();
        assert_eq!(e.code, TaskErrorCode::FetchFileFailed, "{path}");
        assert!(e.message.contains("symbolic link"), "{e}");
    }
    assert_eq!(sh(&sim, &p, "ls /sdcard/link").await.1, 1);
    let e = push_bytes(&sim, &p, "/sdcard/link/new.txt", b"x")
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    let e = push_bytes(&sim, &p, "/sdcard/file", b"x")
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    assert_eq!(
        sh(&sim, &p, "mkdir -p /sdcard/link/sub; touch /sdcard/file")
            .await
            .1,
        1
    );
    assert_eq!(sh(&sim, &p, "rm -rf /sdcard/link").await.1, 1);
    // The listing shows the link itself, never its target's content.
    let (long, _) = sh(&sim, &p, "ls -l /sdcard").await;
    assert!(
        long.lines()
            .any(|l| l.starts_with('l') && l.contains(" link -> ")),
        "{long}"
    );

    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "host secret"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing written outside"
    );
}

#[tokio::test]
async fn reset_wipes_files_and_user_apps_and_keeps_the_image() {
    let (_dir, sim, p) = setup().await;
    push_bytes(&sim, &p, "/sdcard/Download/keep.txt", b"data")
        .await
        .unwrap();
    sim.install_package(&p, "com.example.app").await.unwrap();
    sh(&sim, &p, "am start com.example.app").await;
    assert_eq!(
        sh(&sim, &p, "getprop ro.build.version.release").await.0,
        "14\n"
    );

    sim.reset(&p, ANDROID_12).await.unwrap();
    assert_eq!(
        sh(&sim, &p, "cat /sdcard/Download/keep.txt").await.1,
        1,
        "the pushed file is gone"
    );
    assert_eq!(sh(&sim, &p, "ls /sdcard/Download").await, ("".into(), 0));
    assert_eq!(sh(&sim, &p, "pm list packages -3").await.0, "");
    assert!(
        sh(&sim, &p, "pm list packages -s")
            .await
            .0
            .contains("package:com.android.settings\n")
    );
    let state = sim.phone_state(&p).await.unwrap();
    assert_eq!(state, PhoneState::fresh());
    assert_eq!(
        sh(&sim, &p, "getprop ro.build.version.release").await.0,
        "12\n"
    );
    assert_eq!(sh(&sim, &p, "getprop ro.serialno").await.0, "acp-a\n");
}

#[tokio::test]
async fn state_survives_a_new_backend_on_the_same_dir() {
    let dir = tempfile::tempdir().unwrap();
    let p = phone("acp-a");
    {
        let sim = sim(dir.path());
        sim.create(&p).await.unwrap();
        sim.install_package(&p, "com.example.app").await.unwrap();
        sh(&sim, &p, "am start com.example.app").await;
    }
    let sim = sim(dir.path());
    let state = sim.phone_state(&p).await.unwrap();
    assert_eq!(state.foreground.as_deref(), Some("com.example.app"));
    assert_eq!(
        sh(&sim, &p, "pm list packages -3").await.0,
        "package:com.example.app\n"
    );
}

/// With recording on, every operation run for a task attempt leaves one ledger line, faults
/// included; operations outside the engine leave none.
#[tokio::test]
async fn executions_are_recorded_per_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sim");
    let sim = SimBackend::new(SimConfig {
        root: root.clone(),
        delay: Some(Duration::from_millis(1)),
        record_executions: true,
    });
    let mut p = phone("acp-a");
    sim.create(&p).await.unwrap();
    p.attempt = Some(AttemptRef {
        task_id: "t-1".into(),
        attempt: 1,
    });
    sim.reboot(&p, false).await.unwrap();
    sim.inject_fault(Fault {
        account_id: "acct-a".into(),
        task_type: Some(TaskType::StopInstance),
        instance_id: None,
        code: TaskErrorCode::OperationFailed,
        message: "boom".into(),
        remaining: Some(1),
        percent: None,
    })
    .unwrap();
    p.attempt = Some(AttemptRef {
        task_id: "t-2".into(),
        attempt: 2,
    });
    assert!(sim.stop(&p, false).await.is_err());
    let ledger = std::fs::read_to_string(root.join(EXECUTIONS_LEDGER)).unwrap();
    let pid = std::process::id();
    let lines: Vec<&str> = ledger.lines().collect();
    assert_eq!(
        lines,
        [
            format!("t-1 1 acp-a RebootInstance ok {pid}"),
            format!("t-2 2 acp-a StopInstance OperationFailed {pid}")
        ]
    );
}

/// A phone's files stay within its storage whatever writes them: SendFile, a restore, `touch`
/// and `mkdir` fail with "No space left on device" past it, a failed write holds nothing, and
/// a removal or a reset frees the space.
#[tokio::test]
async fn writes_past_the_phones_storage_fail_with_enospc() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(&dir.path().join("sim")).with_storage_capacity(1 << 20);
    let p = phone("acp-a");
    sim.create(&p).await.unwrap();
    let storage = sim.phone(&p.id).storage().clone();
    let base = storage.used();

    let e = push_bytes(&sim, &p, "/sdcard/big", &vec![1u8; 2 << 20])
        .await
        .unwrap_err();
    assert_eq!(e.code, TaskErrorCode::SendFileFailed);
    assert_eq!(
        e.message,
        "Writing /sdcard/big failed: No space left on device."
    );
    assert_eq!(storage.used(), base);
    assert_eq!(sh(&sim, &p, "ls /sdcard/big").await.1, 1);

    // Almost full: what is left is less than a block.
    let left = (1u64 << 20) - base - storage::BLOCK;
    push_bytes(&sim, &p, "/sdcard/fill", &vec![2u8; left as usize + 1])
        .await
        .unwrap();
    push_bytes(&sim, &p, "/sdcard/note", b"x")
        .await
        .unwrap_err();
    assert_eq!(
        sh(&sim, &p, "touch /sdcard/new; mkdir -p /sdcard/a/b").await,
        (
            "touch: /sdcard/new: No space left on device\n\
             mkdir: /sdcard/a/b: No space left on device\n"
                .into(),
            1
        )
    );
    assert_eq!(sh(&sim, &p, "ls /sdcard/new /sdcard/a").await.1, 1);
    // Touching a file that exists takes nothing.
    assert_eq!(sh(&sim, &p, "touch /sdcard/fill").await.1, 0);

    // A restore that would not fit writes nothing.
    let archive = dir.path().join("backup.tar");
    {
        let other = sim.phone(&p.id).data();
        std::fs::write(other.join("sdcard/Download/r.bin"), vec![3u8; 200_000]).unwrap();
        archive::write(&other, &["/sdcard/Download".into()], &[], &archive).unwrap();
        std::fs::remove_file(other.join("sdcard/Download/r.bin")).unwrap();
    }
    let e = sim.restore(&p, &archive).await.unwrap_err();
    assert_eq!(e.code, TaskErrorCode::RecoverFileFailed);
    assert!(
        e.message.contains("No space left on device"),
        "{}",
        e.message
    );
    assert_eq!(sh(&sim, &p, "ls /sdcard/Download").await, ("".into(), 0));

    // Removing frees: the restore and the small push fit now.
    assert_eq!(sh(&sim, &p, "rm /sdcard/fill").await.1, 0);
    sim.restore(&p, &archive).await.unwrap();
    push_bytes(&sim, &p, "/sdcard/note", b"x").await.unwrap();
    assert_eq!(storage.used(), base + 49 * storage::BLOCK + storage::BLOCK);

    // A reset leaves the fresh phone's files only.
    sim.reset(&p, ANDROID_14).await.unwrap();
    assert_eq!(storage.used(), base);
}
