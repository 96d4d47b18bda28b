//! A test tool, not a product: opens one docker phone's live screen through
//! `DockerBackend::open_screen`, as the stream server will, plays a script of inputs into it,
//! and reports what came out as JSON lines on stdout, for tests/sdk/test_docker_screen.py.
//!
//! ```text
//! screen_probe --docker unix:///SOCK --adb-port P --prefix PFX --adb-ports A-B --image IMG
//!              --instance ID [--scrcpy JAR] [--max-size N] [--fps N] [--dump DIR] STEP...
//! ```
//!
//! Steps, in frame pixels of the last frame: `frames:N` (wait for N more frames), `wait:MS`,
//! `tap:X,Y`, `long:X,Y,MS`, `swipe:X1,Y1,X2,Y2,MS`, `text:STRING`, `key:NAME` (back, home, ...),
//! `rotate`, `keyframe`. Lines: `{"open": ...}`, `{"frame": ...}` for each frame (with the
//! NAL unit types of an H.264 one), `{"ack": ...}` for each input. `--dump DIR` keeps the
//! last PNG frame as `DIR/last.png` and the H.264 stream as `DIR/stream.h264`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use cloudphone_backend::{
    Backend, Codec, Frame, Input, InputEvent, InstanceRef, Key, Screen, ScreenOptions, TouchAction,
};
use cloudphone_backends::adb::{AdbServer, ScrcpyServer};
use cloudphone_backends::{DockerBackend, DockerConfig, DockerImage, HostSpec, Network};
use serde_json::json;
use tokio::sync::oneshot;

struct Probe {
    screen: Screen,
    size: (u16, u16),
    frames: u64,
    seq: u32,
    dump: Option<PathBuf>,
}

fn say(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn nal_types(data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            types.push(data[i + 3] & 0x1F);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

impl Probe {
    fn seen(&mut self, f: Frame) {
        self.frames += 1;
        self.size = (f.width, f.height);
        let nals = if f.codec == Codec::H264 {
            nal_types(&f.data)
        } else {
            Vec::new()
        };
        say(json!({"frame": {
            "n": self.frames, "codec": f.codec.name(), "key": f.key, "w": f.width, "h": f.height,
            "rotated": f.rotated, "shows": f.shows_input, "bytes": f.data.len(), "nals": nals,
        }}));
        if let Some(dir) = &self.dump {
            if f.codec == Codec::H264 {
                let mut s = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("stream.h264"))
                    .expect("the dump dir");
                s.write_all(&f.data).expect("the dump dir");
            } else {
                std::fs::write(dir.join("last.png"), &f.data).expect("the dump dir");
            }
        }
    }

    /// Takes the frames that arrive within `ms`.
    async fn wait(&mut self, ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(Some(f)) = tokio::time::timeout_at(until, self.screen.frames.recv()).await {
            self.seen(f);
        }
    }

    async fn frames(&mut self, n: u64) {
        let want = self.frames + n;
        while self.frames < want {
            match tokio::time::timeout(Duration::from_secs(20), self.screen.frames.recv()).await {
                Ok(Some(f)) => self.seen(f),
                Ok(None) => panic!("the screen ended"),
                Err(_) => panic!("no frame within 20 s"),
            }
        }
    }

    async fn send(&mut self, input: Input) {
        self.seq += 1;
        let (done, answer) = oneshot::channel();
        let event = InputEvent {
            input,
            tag: 1,
            seq: self.seq,
            done: Some(done),
        };
        self.screen
            .input
            .send(event)
            .await
            .expect("the screen ended");
        // Frames keep coming while the input is applied.
        let mut answer = std::pin::pin!(answer);
        let result = loop {
            tokio::select! {
                r = &mut answer => break r.expect("an answer"),
                f = self.screen.frames.recv() => if let Some(f) = f { self.seen(f) },
            }
        };
        say(json!({"ack": {"seq": self.seq, "ok": result.is_ok(),
            "error": result.err().map(|e| e.message)}}));
    }

    async fn touch(&mut self, action: TouchAction, x: u32, y: u32) {
        let (frame_w, frame_h) = self.size;
        self.send(Input::Touch {
            action,
            x,
            y,
            frame_w,
            frame_h,
        })
        .await;
    }

    async fn step(&mut self, step: &str) {
        let (what, arg) = step.split_once(':').unwrap_or((step, ""));
        let n: Vec<u32> = arg.split(',').filter_map(|v| v.parse().ok()).collect();
        match (what, n.as_slice()) {
            ("frames", [count]) => self.frames(u64::from(*count)).await,
            ("wait", [ms]) => self.wait(u64::from(*ms)).await,
            ("tap", [x, y]) => {
                self.touch(TouchAction::Down, *x, *y).await;
                self.touch(TouchAction::Up, *x, *y).await;
            }
            ("long", [x, y, ms]) => {
                self.touch(TouchAction::Down, *x, *y).await;
                self.wait(u64::from(*ms)).await;
                self.touch(TouchAction::Up, *x, *y).await;
            }
            ("swipe", [x1, y1, x2, y2, ms]) => {
                self.touch(TouchAction::Down, *x1, *y1).await;
                for i in 1..=4 {
                    self.wait(u64::from(*ms) / 5).await;
                    let at = |a: u32, b: u32| (a as i64 + (b as i64 - a as i64) * i / 5) as u32;
                    self.touch(TouchAction::Move, at(*x1, *x2), at(*y1, *y2))
                        .await;
                }
                self.wait(u64::from(*ms) / 5).await;
                self.touch(TouchAction::Up, *x2, *y2).await;
            }
            ("text", _) => self.send(Input::Text(arg.to_string())).await,
            ("key", _) => {
                let key = Key::from_name(arg).unwrap_or_else(|| panic!("no key {arg}"));
                self.send(Input::Key(key)).await
            }
            ("rotate", _) => self.send(Input::Rotate).await,
            ("keyframe", _) => self.send(Input::KeyFrame).await,
            _ => panic!("unknown step {step}"),
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut opt = std::collections::HashMap::new();
    let mut steps = Vec::new();
    while let Some(a) = args.next() {
        match a.strip_prefix("--") {
            Some(name) => {
                opt.insert(name.to_string(), args.next().expect("a value"));
            }
            None => steps.push(a),
        }
    }
    let get = |k: &str| opt.get(k).cloned().unwrap_or_else(|| panic!("--{k}"));
    let (low, high) = get("adb-ports")
        .split_once('-')
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .expect("--adb-ports A-B");
    let image = DockerImage {
        id: get("image"),
        name: "probe".into(),
        android_version: "12".into(),
        description: String::new(),
        reference: String::new(),
        privileged: false,
        args: Vec::new(),
        env: Vec::new(),
        data_path: "/data".into(),
        adb_port: 5555,
        run_as_root: false,
    };
    let mut config = DockerConfig::new(vec![image]);
    config.hosts = vec![HostSpec::legacy(
        Some(get("docker")),
        Network::Host {
            adb_ports: (low, high),
        },
    )];
    config.adb = AdbServer {
        port: Some(get("adb-port").parse().expect("--adb-port")),
        ..AdbServer::default()
    };
    config.name_prefix = get("prefix");
    config.scrcpy = opt
        .get("scrcpy")
        .map(|p| ScrcpyServer::load(p.as_ref()).expect("the scrcpy server"));
    let backend = DockerBackend::connect(config).await.expect("the engine");
    let phone = InstanceRef {
        id: get("instance"),
        account_id: String::new(),
        name: String::new(),
        image_id: get("image"),
        spec: String::new(),
        attempt: None,
        ..InstanceRef::default()
    };
    let opts = ScreenOptions {
        max_size: opt.get("max-size").map_or(1280, |v| v.parse().unwrap()),
        fps: opt.get("fps").map_or(10, |v| v.parse().unwrap()),
        images_only: false,
    };
    let screen = match backend.open_screen(&phone, opts).await {
        Ok(s) => s,
        Err(e) => {
            say(json!({"error": {"code": e.code.to_string(), "message": e.message}}));
            std::process::exit(1)
        }
    };
    say(json!({"open": {"codec": screen.codec.name(), "device": screen.device}}));
    let mut probe = Probe {
        screen,
        size: (0, 0),
        frames: 0,
        seq: 0,
        dump: opt.get("dump").map(PathBuf::from),
    };
    probe.frames(1).await;
    for step in &steps {
        probe.step(step).await;
    }
}
