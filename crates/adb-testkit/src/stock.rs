//! A private stock ADB server (`/usr/bin/adb` on its own port, with its own HOME), killed when
//! dropped, and the `adb` commands the tests run against it, each bounded in time and echoed
//! to the test's output.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

const ADB: &str = "/usr/bin/adb";

/// One `adb` command at most this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct StockAdb {
    pub port: u16,
    pub home: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl StockAdb {
    /// With a key of its own (adb makes one in the new HOME when the server starts).
    pub async fn start() -> StockAdb {
        StockAdb::start_with(None).await
    }

    /// With `private_pem` (PKCS#8) as `~/.android/adbkey` and `public` (an `adbkey.pub` line)
    /// as `adbkey.pub`.
    pub async fn with_key(private_pem: &str, public: &str) -> StockAdb {
        StockAdb::start_with(Some((private_pem, public))).await
    }

    async fn start_with(key: Option<(&str, &str)>) -> StockAdb {
        assert!(
            Path::new(ADB).exists(),
            "Debian's adb is needed: apt-get install -y adb"
        );
        // A free port may be taken by another test's listener before adb binds it: retry.
        for _ in 0..5 {
            let home = tempfile::tempdir().unwrap();
            if let Some((private_pem, public)) = key {
                let android = home.path().join(".android");
                std::fs::create_dir_all(&android).unwrap();
                std::fs::write(android.join("adbkey"), private_pem).unwrap();
                std::fs::write(
                    android.join("adbkey.pub"),
                    format!("{}\n", public.trim_end()),
                )
                .unwrap();
            }
            let adb = StockAdb {
                port: free_port(),
                home,
            };
            // The server outlives this command and keeps any pipe it inherits: no pipes.
            let status = adb
                .command(&["start-server"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .unwrap();
            if status.success() {
                return adb;
            }
        }
        panic!("adb start-server failed 5 times");
    }

    /// The server's address (for a relay that goes through it).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The client's key, `adbkey.pub` (made when the server first started, or given).
    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.home.path().join(".android/adbkey.pub")).unwrap()
    }

    /// `adb ARGS` against this server, nothing of the test's environment leaking in.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ADB);
        c.arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .env("HOME", self.home.path())
            .env("ANDROID_ADB_SERVER_PORT", self.port.to_string())
            .env_remove("ANDROID_SDK_HOME")
            .env_remove("ADB_VENDOR_KEYS")
            .env_remove("ANDROID_SERIAL")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// `adb ARGS` to its end (60 s at most).
    pub async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::time::timeout(COMMAND_TIMEOUT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("adb {args:?} took over 60 s"))
            .unwrap();
        eprintln!(
            "adb {args:?}: {:?}\n  stdout: {}\n  stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
        out
    }

    /// `adb connect` (what it said, on either stream) and the device's state then, as `adb
    /// devices` lists it.
    pub async fn connect(&self, serial: &str) -> (String, Option<String>) {
        let out = self.run(&["connect", serial]).await;
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (said, self.state(serial).await)
    }

    pub async fn state(&self, serial: &str) -> Option<String> {
        let out = self.run(&["devices"]).await;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (s, state) = l.split_once('\t')?;
            (s == serial).then(|| state.trim().to_string())
        })
    }

    /// Connected and usable (`device`), or panics with what adb said.
    pub async fn connected(&self, serial: &str) {
        let (said, state) = self.connect(serial).await;
        assert_eq!(state.as_deref(), Some("device"), "adb connect said: {said}");
    }

    /// `adb -s SERIAL shell ARGS`: (stdout, stderr, exit code).
    pub async fn shell(&self, serial: &str, args: &[&str]) -> (String, String, Option<i32>) {
        let mut all = vec!["-s", serial, "shell"];
        all.extend_from_slice(args);
        let out = self.run(&all).await;
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    }

    /// `adb -s SERIAL push LOCAL REMOTE`.
    pub async fn push(&self, serial: &str, local: &Path, remote: &str) -> Output {
        let local = local.to_str().expect("a UTF-8 path");
        self.run(&["-s", serial, "push", local, remote]).await
    }

    /// `adb -s SERIAL pull REMOTE LOCAL`.
    pub async fn pull(&self, serial: &str, remote: &str, local: &Path) -> Output {
        let local = local.to_str().expect("a UTF-8 path");
        self.run(&["-s", serial, "pull", remote, local]).await
    }
}

impl Drop for StockAdb {
    fn drop(&mut self) {
        let _ = std::process::Command::new(ADB)
            .args(["-P", &self.port.to_string(), "kill-server"])
            .env("HOME", self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
