//! The parts every test drives: a gateway (an accept loop on 127.0.0.1 port 0 running
//! `serve_connection_with` per connection) and a private stock ADB server (Debian's `/usr/bin/adb`
//! on its own port, with a temporary HOME so that its `~/.android/adbkey` is a fresh key),
//! killed when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudphone_adb::proto::banner::Banner;
use cloudphone_adb::session::{
    Authorizer, Config, ConnectionHandle, Device, End, OpenError, ResolvedDevice,
    serve_connection_with,
};
use tokio::net::TcpListener;
use tokio::process::Command;

/// What the test keeps of an ended connection.
#[derive(Debug)]
pub struct Ended {
    pub end: String,
    pub host: Option<Banner>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub authenticated: bool,
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub handles: Arc<Mutex<Vec<ConnectionHandle>>>,
    pub ended: Arc<Mutex<Vec<Ended>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub async fn start<A, D>(config: Config, authorizer: A, device: Arc<D>) -> Gateway
    where
        A: Authorizer + 'static,
        A::Identity: std::fmt::Debug,
        D: Device,
    {
        let resolve = move || {
            let device = device.clone();
            async move { Ok(ResolvedDevice::new(device)) }
        };
        Gateway::start_with(config, authorizer, resolve).await
    }

    /// A gateway that finds its device only once a host is in (`serve_connection_with`).
    pub async fn start_with<A, D, F, Fut>(config: Config, authorizer: A, resolve: F) -> Gateway
    where
        A: Authorizer + 'static,
        A::Identity: std::fmt::Debug,
        D: Device,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResolvedDevice<D>, OpenError>> + Send + 'static,
    {
        let resolve = Arc::new(resolve);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handles = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(Vec::new()));
        let (config, authorizer) = (Arc::new(config), Arc::new(authorizer));
        let (h, e) = (handles.clone(), ended.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                sock.set_nodelay(true).unwrap();
                let handle = ConnectionHandle::new();
                h.lock().unwrap().push(handle.clone());
                let (config, authorizer, resolve, e) = (
                    config.clone(),
                    authorizer.clone(),
                    resolve.clone(),
                    e.clone(),
                );
                tokio::spawn(async move {
                    let r =
                        serve_connection_with(sock, &config, &*authorizer, || resolve(), handle)
                            .await;
                    let end = match &r.end {
                        End::Failed(err) => format!("failed: {err}"),
                        other => format!("{other:?}"),
                    };
                    e.lock().unwrap().push(Ended {
                        end,
                        host: r.host,
                        bytes_in: r.bytes_in,
                        bytes_out: r.bytes_out,
                        authenticated: r.identity.is_some(),
                    });
                });
            }
        });
        Gateway {
            addr,
            handles,
            ended,
            task,
        }
    }

    pub fn serial(&self) -> String {
        self.addr.to_string()
    }

    pub fn close_all(&self) {
        for h in self.handles.lock().unwrap().iter() {
            h.close();
        }
    }

    /// Waits until `n` connections have ended.
    pub async fn wait_ended(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.ended.lock().unwrap().len() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
        self.close_all();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private ADB server.
pub struct AdbServer {
    pub port: u16,
    home: tempfile::TempDir,
}

impl AdbServer {
    pub async fn start() -> AdbServer {
        assert!(
            std::path::Path::new("/usr/bin/adb").exists(),
            "Debian's adb is needed: apt-get install -y adb"
        );
        // A free port may be taken by another test's listener before adb binds it: retry.
        for _ in 0..5 {
            let server = AdbServer {
                port: free_port(),
                home: tempfile::tempdir().unwrap(),
            };
            // The server outlives this command and keeps any pipe it inherits: no pipes.
            let status = server
                .command(&["start-server"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .unwrap();
            if status.success() {
                return server;
            }
        }
        panic!("adb start-server failed 5 times");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's own key, `adbkey.pub` (made when the server first started).
    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.home.path().join(".android/adbkey.pub")).unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/adb");
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

    /// Runs `adb ARGS` to its end (60 s at most).
    pub async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
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

    /// `adb connect` and the device's state as `adb devices` lists it.
    pub async fn connect(&self, serial: &str) -> (String, Option<String>) {
        let out = self.run(&["connect", serial]).await;
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        (said, self.state(serial).await)
    }

    pub async fn state(&self, serial: &str) -> Option<String> {
        let out = self.run(&["devices"]).await;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (s, state) = l.split_once('\t')?;
            (s == serial).then(|| state.trim().to_string())
        })
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("/usr/bin/adb")
            .args(["-P", &self.port.to_string(), "kill-server"])
            .env("HOME", self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
