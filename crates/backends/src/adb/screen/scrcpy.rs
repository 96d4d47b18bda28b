//! The scrcpy client side, for scrcpy's server 3.3.4 (Apache-2.0, Genymobile; the jar comes
//! from a package registry, see README): the jar is pushed to the phone unless it is there
//! already (checked by its sha256 on the phone), started through a shell stream that lives as
//! long as the screen, and its two sockets, video then control, are opened as
//! `localabstract:scrcpy_<scid>` services through the ADB server, retried until the server
//! listens. The video socket starts with one dummy byte; once both sockets are accepted, the
//! device name (64 bytes) and the codec meta (`u32` codec id, width, height) follow on it,
//! then packets ([`super::demux`]). Input goes to
//! the control socket ([`super::control`]); what the server sends back there (clipboard) is
//! read and forgotten, so that it never blocks.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cloudphone_adb::relay::{self, RelayError};
use cloudphone_backend::screen::{H264_FRAMES_CAPACITY, INPUT_CAPACITY, scale_point};
use cloudphone_backend::{
    BackendError, Codec, Frame, Input, InputEvent, Key, Screen, ScreenOptions, TouchAction,
};
use cloudphone_core::TaskErrorCode;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::ScreenTarget;
use super::control::{Action, Message, text_chunks};
use super::demux::{self, Demuxer, HEADER_LEN, MAX_PACKET};

pub const SCRCPY_VERSION: &str = "3.3.4";
/// scrcpy's own `PREBUILT_SERVER_SHA256` for v3.3.4: the jar must be upstream's.
pub const SCRCPY_SERVER_SHA256: &str =
    "8588238c9a5a00aa542906b6ec7e6d5541d9ffb9b5d0f6e1bc0e365e2303079e";
/// Where the jar goes on the phone; kept between sessions (`cleanup=false`).
const REMOTE_JAR: &str = "/data/local/tmp/cloudphone-scrcpy-3.3.4.jar";
/// How long the server may take to listen, and to send its headers.
const START_WITHIN: Duration = Duration::from_secs(10);
/// `u32` codec ids of the codec meta.
const CODEC_H264: u32 = 0x6832_3634;
/// How much of the server's output is kept to explain a failure.
const KEEP_OUTPUT: usize = 2048;

/// The scrcpy server jar, checked to be 3.3.4's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrcpyServer {
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ScrcpyJarError {
    #[error("cannot read the scrcpy server {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error(
        "{path} is not the scrcpy server {SCRCPY_VERSION}: its sha256 is {found}, not {SCRCPY_SERVER_SHA256}"
    )]
    NotTheServer { path: String, found: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ScrcpyServer {
    /// The jar at `path`, if it is scrcpy-server v3.3.4 (its sha256).
    pub fn load(path: &Path) -> Result<ScrcpyServer, ScrcpyJarError> {
        let bytes = std::fs::read(path).map_err(|source| ScrcpyJarError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let found = hex(&Sha256::digest(&bytes));
        if found != SCRCPY_SERVER_SHA256 {
            return Err(ScrcpyJarError::NotTheServer {
                path: path.display().to_string(),
                found,
            });
        }
        Ok(ScrcpyServer {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The shell command that starts the server; `scid` names its socket (31 bits, in hex).
pub fn server_command(scid: u32, max_size: u32, max_fps: u8) -> String {
    format!(
        "CLASSPATH={REMOTE_JAR} app_process / com.genymobile.scrcpy.Server {SCRCPY_VERSION} \
         scid={scid:08x} log_level=info tunnel_forward=true audio=false control=true \
         cleanup=false video_codec=h264 max_size={max_size} max_fps={max_fps} \
         video_bit_rate=4000000 stay_awake=false power_on=true"
    )
}

/// Pushes the jar unless the phone has it already.
async fn push_if_needed(target: &ScreenTarget, jar: &ScrcpyServer) -> Result<(), String> {
    let phone = target.phone();
    let there = phone
        .run_command(&format!("sha256sum {REMOTE_JAR}"), Duration::from_secs(20))
        .await
        .map_err(|e| e.message)?;
    if there.exit_code == 0 && there.output.starts_with(SCRCPY_SERVER_SHA256.as_bytes()) {
        return Ok(());
    }
    phone
        .push_file(&jar.path, REMOTE_JAR)
        .await
        .map(drop)
        .map_err(|e| format!("pushing the server: {}", e.message))
}

/// The server's output so far, and whether it ended.
#[derive(Default)]
struct Output {
    text: String,
    ended: bool,
}

/// Keeps the shell stream the server runs in (its end ends the server) and its last words.
fn hold_shell(mut shell: TcpStream, output: Arc<Mutex<Output>>, token: CancellationToken) {
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        loop {
            let n = tokio::select! {
                _ = token.cancelled() => break,
                n = shell.read(&mut buf) => n.unwrap_or(0),
            };
            let mut out = output.lock().unwrap_or_else(|p| p.into_inner());
            if n == 0 {
                out.ended = true;
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            debug!(target: "cloudphone::scrcpy", "{}", text.trim_end());
            out.text.push_str(&text);
            if out.text.len() > KEEP_OUTPUT {
                let cut = out.text.len() - KEEP_OUTPUT;
                let cut = (cut..out.text.len())
                    .find(|&i| out.text.is_char_boundary(i))
                    .unwrap_or(cut);
                out.text.drain(..cut);
            }
        }
    });
}

fn said(output: &Mutex<Output>) -> String {
    let out = output.lock().unwrap_or_else(|p| p.into_inner());
    let text = out.text.trim();
    if text.is_empty() {
        "(it printed nothing)".into()
    } else {
        text.to_string()
    }
}

/// Opens the server's video socket once it listens: the first byte it sends (a dummy 0)
/// tells that the connection reached it.
async fn connect_video(
    relay: &relay::AdbServer,
    serial: &str,
    socket: &str,
    deadline: Instant,
    output: &Mutex<Output>,
) -> Result<TcpStream, String> {
    loop {
        if output.lock().unwrap_or_else(|p| p.into_inner()).ended {
            return Err(format!("the server ended: {}", said(output)));
        }
        match relay.open_service(serial, socket).await {
            Ok(mut sock) => match timeout(START_WITHIN, sock.read_u8()).await {
                Ok(Ok(0)) => return Ok(sock),
                Ok(Ok(b)) => return Err(format!("the server's first byte was {b}, not 0")),
                // Accepted, then closed: nothing listened yet.
                Ok(Err(_)) => {}
                Err(_) => return Err("the server sent nothing on its video socket".into()),
            },
            Err(RelayError::Refused(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the server did not listen within {START_WITHIN:?}: {}",
                said(output)
            ));
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the server on the phone and opens its screen; `panel` is the device's size if known.
pub(super) async fn open(
    target: &ScreenTarget,
    relay: &relay::AdbServer,
    jar: &ScrcpyServer,
    opts: ScreenOptions,
    panel: Option<(u32, u32)>,
) -> Result<Screen, String> {
    push_if_needed(target, jar).await?;
    let scid = rand::random::<u32>() & 0x7FFF_FFFF;
    // The server wants a multiple of 8.
    let max_size = u32::from(opts.max_size) / 8 * 8;
    let command = server_command(scid, max_size, opts.fps);
    let shell = relay
        .open_service(&target.serial, &format!("shell:{command}"))
        .await
        .map_err(|e| format!("starting the server: {e}"))?;
    let token = CancellationToken::new();
    // Whatever fails from here on ends the server with the guard.
    let stop = token.clone().drop_guard();
    let output = Arc::new(Mutex::new(Output::default()));
    hold_shell(shell, output.clone(), token.clone());
    let deadline = Instant::now() + START_WITHIN;
    let socket = format!("localabstract:scrcpy_{scid:08x}");
    let mut video = connect_video(relay, &target.serial, &socket, deadline, &output).await?;
    // The server accepts both sockets before it writes anything more.
    let control = relay
        .open_service(&target.serial, &socket)
        .await
        .map_err(|e| format!("opening the control socket: {e}"))?;
    let mut head = [0u8; 64 + 12];
    match tokio::time::timeout_at(deadline, video.read_exact(&mut head)).await {
        Ok(Ok(_)) => {}
        _ => {
            return Err(format!(
                "the server sent no codec meta within {START_WITHIN:?}: {}",
                said(&output)
            ));
        }
    }
    let word = |i: usize| u32::from_be_bytes(head[i..i + 4].try_into().expect("4 bytes"));
    let (codec, width, height) = (word(64), word(68), word(72));
    match codec {
        CODEC_H264 => {}
        0 => return Err("the server disabled its video".into()),
        1 => return Err(format!("the server could not encode: {}", said(&output))),
        other => return Err(format!("the server chose codec {other:#x}, not H.264")),
    }
    let name = String::from_utf8_lossy(&head[..64])
        .trim_end_matches('\0')
        .to_string();
    debug!(serial = %target.serial, device = %name, width, height, "scrcpy started");

    let size = (
        u16::try_from(width).map_err(|_| "the video is too wide")?,
        u16::try_from(height).map_err(|_| "the video is too high")?,
    );
    let panel = panel.unwrap_or((width, height));
    let video_size = Arc::new(Mutex::new(size));
    let (frames_tx, frames) = mpsc::channel(H264_FRAMES_CAPACITY);
    let (input, input_rx) = mpsc::channel(INPUT_CAPACITY);
    let (control_read, control_write) = control.into_split();
    tokio::spawn(pump_video(
        video,
        Demuxer::new(size),
        panel,
        video_size.clone(),
        frames_tx,
        token.clone(),
    ));
    tokio::spawn(drain(control_read, token.clone()));
    tokio::spawn(apply_input(
        control_write,
        input_rx,
        video_size,
        token.clone(),
    ));
    Ok(Screen {
        codec: Codec::H264,
        device: panel,
        frames,
        input,
        stop,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads packets and sends the pictures on; its end (the server's, or the screen's) ends the
/// others.
async fn pump_video(
    mut video: TcpStream,
    mut demuxer: Demuxer,
    panel: (u32, u32),
    video_size: Arc<Mutex<(u16, u16)>>,
    frames: mpsc::Sender<Frame>,
    token: CancellationToken,
) {
    let portrait = panel.1 >= panel.0;
    let read = async {
        loop {
            let mut head = [0u8; HEADER_LEN];
            video.read_exact(&mut head).await?;
            let header = demux::header(&head);
            if header.len > MAX_PACKET {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a packet of {} bytes", header.len),
                ));
            }
            let mut data = vec![0u8; header.len as usize];
            video.read_exact(&mut data).await?;
            let picture = demuxer.push(header, Bytes::from(data));
            // Touches are scaled to the size the server encodes at now.
            *video_size.lock().unwrap_or_else(|p| p.into_inner()) = demuxer.size();
            let Some(picture) = picture else {
                continue;
            };
            let (w, h) = picture.size;
            let frame = Frame {
                codec: Codec::H264,
                key: picture.key,
                width: w,
                height: h,
                rotated: (h >= w) != portrait,
                shows_input: None,
                captured_ms: now_ms(),
                data: picture.data,
            };
            if frames.send(frame).await.is_err() {
                return Ok(());
            }
        }
    };
    tokio::select! {
        _ = token.cancelled() => {}
        r = read => if let Err(e) = r { debug!("scrcpy video ended: {e}") },
    }
    token.cancel();
}

/// Reads what the server sends on the control socket (clipboard changes) and forgets it.
async fn drain(mut from: impl AsyncRead + Unpin, token: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            n = from.read(&mut buf) => if !matches!(n, Ok(n) if n > 0) { return },
        }
    }
}

/// The control messages an input becomes; `size` is the video's current size.
pub fn messages(input: &Input, size: (u16, u16)) -> Vec<Message> {
    match input {
        Input::Touch {
            action,
            x,
            y,
            frame_w,
            frame_h,
        } => {
            let (x, y) = scale_point(
                *x,
                *y,
                (*frame_w, *frame_h),
                (u32::from(size.0), u32::from(size.1)),
            );
            let action = match action {
                TouchAction::Down => Action::Down,
                TouchAction::Move => Action::Move,
                TouchAction::Up => Action::Up,
                TouchAction::Cancel => Action::Cancel,
            };
            vec![Message::Touch {
                action,
                x: x as i32,
                y: y as i32,
                size,
            }]
        }
        Input::Text(text) => text_chunks(text)
            .into_iter()
            .map(|t| Message::Text(t.to_string()))
            .collect(),
        // Back also wakes a phone whose screen is off, as scrcpy's own client does.
        Input::Key(Key::Back) => vec![
            Message::BackOrScreenOn(Action::Down),
            Message::BackOrScreenOn(Action::Up),
        ],
        Input::Key(key) => [Action::Down, Action::Up]
            .into_iter()
            .map(|action| Message::Keycode {
                action,
                code: key.android_code(),
            })
            .collect(),
        Input::Rotate => vec![Message::Rotate],
        Input::KeyFrame => vec![Message::ResetVideo],
    }
}

/// Writes each input to the control socket, in order.
async fn apply_input(
    mut to: OwnedWriteHalf,
    mut inputs: mpsc::Receiver<InputEvent>,
    video_size: Arc<Mutex<(u16, u16)>>,
    token: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => return,
            e = inputs.recv() => match e { Some(e) => e, None => return },
        };
        let size = *video_size.lock().unwrap_or_else(|p| p.into_inner());
        let bytes: Vec<u8> = messages(&event.input, size)
            .iter()
            .flat_map(Message::encode)
            .collect();
        let written = to.write_all(&bytes).await.map_err(|e| {
            BackendError::new(
                TaskErrorCode::InstanceUnreachable,
                format!("the scrcpy server's control socket: {e}"),
            )
        });
        let failed = written.is_err();
        if let Some(done) = event.done {
            let _ = done.send(written);
        }
        if failed {
            token.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_started_as_scrcpy_3_3_4_wants() {
        let c = server_command(0x1a2b, 1280, 30);
        assert!(c.starts_with(
            "CLASSPATH=/data/local/tmp/cloudphone-scrcpy-3.3.4.jar app_process / \
             com.genymobile.scrcpy.Server 3.3.4 scid=00001a2b "
        ));
        for option in [
            "tunnel_forward=true",
            "audio=false",
            "control=true",
            "cleanup=false",
            "video_codec=h264",
            "max_size=1280",
            "max_fps=30",
        ] {
            assert!(c.split(' ').any(|w| w == option), "{option} in {c}");
        }
    }

    #[test]
    fn the_jar_is_checked_by_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("scrcpy-server");
        std::fs::write(&fake, b"not a jar").unwrap();
        let e = ScrcpyServer::load(&fake).unwrap_err();
        assert!(
            e.to_string().contains("is not the scrcpy server 3.3.4"),
            "{e}"
        );
        let e = ScrcpyServer::load(&dir.path().join("none")).unwrap_err();
        assert!(matches!(e, ScrcpyJarError::Read { .. }));
    }

    #[test]
    fn inputs_become_control_messages() {
        let touch = Input::Touch {
            action: TouchAction::Down,
            x: 360,
            y: 640,
            frame_w: 720,
            frame_h: 1280,
        };
        assert_eq!(
            messages(&touch, (184, 320)),
            [Message::Touch {
                action: Action::Down,
                x: 92,
                y: 160,
                size: (184, 320)
            }]
        );
        assert_eq!(
            messages(&Input::Key(Key::Home), (1, 1)),
            [
                Message::Keycode {
                    action: Action::Down,
                    code: 3
                },
                Message::Keycode {
                    action: Action::Up,
                    code: 3
                }
            ]
        );
        assert_eq!(
            messages(&Input::Key(Key::Back), (1, 1)),
            [
                Message::BackOrScreenOn(Action::Down),
                Message::BackOrScreenOn(Action::Up)
            ]
        );
        assert_eq!(messages(&Input::Text("x".repeat(301)), (1, 1)).len(), 2);
        assert_eq!(messages(&Input::KeyFrame, (1, 1)), [Message::ResetVideo]);
        assert_eq!(messages(&Input::Rotate, (1, 1)), [Message::Rotate]);
    }
}
