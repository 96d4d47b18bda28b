//! The gateway every test drives: an accept loop on 127.0.0.1 port 0 running
//! `serve_connection_with` per connection, keeping each connection's handle and how it ended.
//! The stock ADB server the tests drive it with is cloudphone-adb-testkit's `StockAdb`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudphone_adb::proto::banner::Banner;
use cloudphone_adb::session::{
    Authorizer, Config, ConnectionHandle, Device, End, OpenError, ResolvedDevice,
    serve_connection_with,
};
use tokio::net::TcpListener;

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
