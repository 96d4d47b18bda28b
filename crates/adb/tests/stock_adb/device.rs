//! The device under test, built from the crate's helpers: a file system in memory and a shell
//! that knows a handful of commands (with exit codes, stderr and stdin), plus a record of every
//! service the host opened.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudphone_adb::proto::service::{ServiceName, ShellRequest};
use cloudphone_adb::proto::sync::{FileStat, S_IFDIR, S_IFREG, errno};
use cloudphone_adb::services::LocalDevice;
use cloudphone_adb::services::shell::{Shell, ShellIo};
use cloudphone_adb::services::sync::{DirEntry, FsError, SyncFs};
use cloudphone_adb::session::{Device, OpenError, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

#[derive(Clone)]
enum Node {
    Dir,
    File {
        data: Arc<Vec<u8>>,
        mode: u32,
        mtime: u32,
    },
}

/// Files and directories in memory.
#[derive(Default)]
pub struct MemFs {
    nodes: Mutex<BTreeMap<String, Node>>,
}

fn norm(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

fn parent(path: &str) -> Option<String> {
    let (p, _) = path.rsplit_once('/')?;
    Some(if p.is_empty() { "/".into() } else { p.into() })
}

impl MemFs {
    pub fn new() -> MemFs {
        let fs = MemFs::default();
        for d in ["/", "/sdcard", "/data", "/data/local", "/data/local/tmp"] {
            fs.nodes.lock().unwrap().insert(d.to_string(), Node::Dir);
        }
        fs
    }

    pub fn file(&self, path: &str) -> Option<Arc<Vec<u8>>> {
        match self.nodes.lock().unwrap().get(&norm(path)) {
            Some(Node::File { data, .. }) => Some(data.clone()),
            _ => None,
        }
    }

    pub fn mkdirs(&self, path: &str) {
        let mut nodes = self.nodes.lock().unwrap();
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            nodes.entry(cur.clone()).or_insert(Node::Dir);
        }
    }

    pub fn remove(&self, path: &str) {
        self.nodes.lock().unwrap().remove(&norm(path));
    }

    fn stat_of(node: &Node) -> FileStat {
        match node {
            Node::Dir => FileStat {
                mode: S_IFDIR | 0o771,
                nlink: 2,
                ..FileStat::default()
            },
            Node::File { data, mode, mtime } => FileStat {
                mode: S_IFREG | (mode & 0o7777),
                nlink: 1,
                size: data.len() as u64,
                mtime: i64::from(*mtime),
                atime: i64::from(*mtime),
                ctime: i64::from(*mtime),
                ..FileStat::default()
            },
        }
    }
}

/// A file being pushed.
pub struct Upload {
    data: Vec<u8>,
    mode: u32,
}

impl tokio::io::AsyncWrite for Upload {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.get_mut().data.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A shared buffer read as a file.
pub struct Bytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl SyncFs for MemFs {
    type Reader = Cursor<Bytes>;
    type Writer = Upload;

    async fn stat(&self, path: &str, _follow: bool) -> Result<FileStat, FsError> {
        let nodes = self.nodes.lock().unwrap();
        nodes
            .get(&norm(path))
            .map(MemFs::stat_of)
            .ok_or_else(FsError::not_found)
    }

    async fn list(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let dir = norm(path);
        let nodes = self.nodes.lock().unwrap();
        match nodes.get(&dir) {
            Some(Node::Dir) => {}
            Some(_) => return Err(FsError::new(errno::ENOTDIR, "Not a directory")),
            None => return Err(FsError::not_found()),
        }
        Ok(nodes
            .iter()
            .filter(|(p, _)| **p != dir && parent(p).as_deref() == Some(dir.as_str()))
            .map(|(p, n)| DirEntry {
                name: p.rsplit('/').next().unwrap_or_default().to_string(),
                stat: MemFs::stat_of(n),
            })
            .collect())
    }

    async fn open_read(&self, path: &str) -> Result<Self::Reader, FsError> {
        match self.nodes.lock().unwrap().get(&norm(path)) {
            Some(Node::File { data, .. }) => Ok(Cursor::new(Bytes(data.clone()))),
            Some(Node::Dir) => Err(FsError::new(errno::EISDIR, "Is a directory")),
            None => Err(FsError::not_found()),
        }
    }

    async fn open_write(&self, path: &str, mode: u32) -> Result<Self::Writer, FsError> {
        let path = norm(path);
        if path.starts_with("/system/") {
            return Err(FsError::new(errno::EROFS, "Read-only file system"));
        }
        if let Some(Node::Dir) = self.nodes.lock().unwrap().get(&path) {
            return Err(FsError::new(errno::EISDIR, "Is a directory"));
        }
        if let Some(p) = parent(&path) {
            self.mkdirs(&p);
        }
        Ok(Upload {
            data: Vec::new(),
            mode,
        })
    }

    async fn finish_write(&self, path: &str, file: Upload, mtime: u32) -> Result<(), FsError> {
        self.nodes.lock().unwrap().insert(
            norm(path),
            Node::File {
                data: Arc::new(file.data),
                mode: file.mode,
                mtime,
            },
        );
        Ok(())
    }
}

/// What the shell and the device saw.
#[derive(Default)]
pub struct Log {
    pub services: Mutex<Vec<String>>,
    pub installed: Mutex<Vec<(String, usize)>>,
    /// Signalled when a `sleep` starts.
    pub sleeping: Notify,
}

/// A few commands, `;`-separated, arguments split on spaces with single quotes honoured (adb
/// quotes the arguments it builds).
pub struct TestShell {
    pub fs: Arc<MemFs>,
    pub log: Arc<Log>,
}

fn words(cmd: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut any) = (vec![], String::new(), false, false);
    for c in cmd.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

impl TestShell {
    async fn one(&self, argv: &[String], io: &mut ShellIo) -> i32 {
        // adb 29 appends `</dev/null` to the `rm` after a push install.
        let args: Vec<&str> = argv
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "</dev/null")
            .collect();
        match args.as_slice() {
            [] => 0,
            ["echo", rest @ ..] => {
                let _ = io
                    .stdout
                    .write_all(format!("{}\n", rest.join(" ")).as_bytes())
                    .await;
                0
            }
            ["warn", rest @ ..] => {
                let _ = io
                    .stderr
                    .write_all(format!("{}\n", rest.join(" ")).as_bytes())
                    .await;
                0
            }
            ["exit", code] => code.parse().unwrap_or(2),
            ["true"] => 0,
            ["false"] => 1,
            ["sleep", secs] => {
                self.log.sleeping.notify_waiters();
                let secs: f64 = secs.parse().unwrap_or(1.0);
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                0
            }
            ["cat"] => {
                let mut buf = vec![0u8; 8192];
                loop {
                    match io.stdin.read(&mut buf).await {
                        Ok(0) | Err(_) => return 0,
                        Ok(n) => {
                            if io.stdout.write_all(&buf[..n]).await.is_err() {
                                return 1;
                            }
                        }
                    }
                }
            }
            ["getprop", "ro.build.version.release"] => {
                let _ = io.stdout.write_all(b"10\n").await;
                0
            }
            ["rm", path] | ["rm", "-f", path] => {
                self.fs.remove(path);
                0
            }
            ["mkdir", "-p", path] => {
                self.fs.mkdirs(path);
                0
            }
            // The push install: the APK was pushed to the path given.
            ["pm", "install", .., path] => match self.fs.file(path) {
                Some(data) => {
                    self.log
                        .installed
                        .lock()
                        .unwrap()
                        .push((path.to_string(), data.len()));
                    let _ = io.stdout.write_all(b"Success\n").await;
                    0
                }
                None => {
                    let _ = io.stderr.write_all(b"Failure [no file]\n").await;
                    1
                }
            },
            // The streamed install: the APK arrives on stdin, its size in -S.
            ["cmd", "package", "install", .., "-S", size] => {
                let size: usize = size.parse().unwrap_or(0);
                let mut got = vec![0u8; size];
                if io.stdin.read_exact(&mut got).await.is_err() {
                    let _ = io.stdout.write_all(b"Failure [short read]\n").await;
                    return 1;
                }
                self.log
                    .installed
                    .lock()
                    .unwrap()
                    .push(("stdin".to_string(), got.len()));
                let _ = io.stdout.write_all(b"Success\n").await;
                0
            }
            [name, ..] => {
                let _ = io
                    .stderr
                    .write_all(format!("sh: {name}: not found\n").as_bytes())
                    .await;
                127
            }
        }
    }
}

impl Shell for TestShell {
    async fn run(&self, request: ShellRequest, mut io: ShellIo) -> i32 {
        let mut code = 0;
        for part in request.command.split(';') {
            code = self.one(&words(part), &mut io).await;
            if words(part).first().map(String::as_str) == Some("exit") {
                break;
            }
        }
        code
    }
}

/// The test phone: [`LocalDevice`] over [`TestShell`] and [`MemFs`], recording each service.
pub struct TestDevice {
    pub inner: LocalDevice<TestShell, MemFs>,
    pub fs: Arc<MemFs>,
    pub log: Arc<Log>,
}

impl TestDevice {
    pub fn new() -> Arc<TestDevice> {
        let fs = Arc::new(MemFs::new());
        let log = Arc::new(Log::default());
        let shell = Arc::new(TestShell {
            fs: fs.clone(),
            log: log.clone(),
        });
        Arc::new(TestDevice {
            inner: LocalDevice::new(shell, fs.clone()),
            fs,
            log,
        })
    }
}

impl Device for TestDevice {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        self.log.services.lock().unwrap().push(service.to_string());
        let name = ServiceName::parse(service.as_bytes());
        // A service of its own beside LocalDevice's: `reboot:` answers nothing and closes.
        if let ServiceName::Reboot(_) = name {
            return Ok(Service::new(|s| async move { drop(s) }));
        }
        self.inner
            .service(&name)
            .ok_or_else(|| OpenError(format!("no {service}")))
    }
}
