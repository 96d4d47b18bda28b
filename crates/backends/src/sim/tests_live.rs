//! Tests of the simulated phone's live screen through the `Backend` trait: frames, input from a
//! viewer and from the shell's `input`, their read-back with `dumpsys input`, CreateScreenshot,
//! and a second node over the same data dir.

use std::time::Instant;

use cloudphone_backend::{Codec, Input, InputEvent, Key, TouchAction};

use super::screen::layout::Layout;
use super::screen::{MARK, canvas::Canvas};
use super::*;

fn phone(id: &str) -> InstanceRef {
    InstanceRef {
        id: id.into(),
        account_id: "acct-a".into(),
        name: "p".into(),
        image_id: ANDROID_14.into(),
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

async fn setup() -> (tempfile::TempDir, SimBackend, InstanceRef) {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(&dir.path().join("sim"));
    let p = phone("acp-live");
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

/// The lines `dumpsys input` lists.
async fn input_log(sim: &SimBackend, p: &InstanceRef) -> Vec<String> {
    let (out, status) = sh(sim, p, "dumpsys input").await;
    assert_eq!(status, 0);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Recent input (newest last):"));
    lines.map(|l| l.trim().to_string()).collect()
}

/// The centre of `app`'s launcher icon on a 720x1280 display.
async fn icon_of(sim: &SimBackend, p: &InstanceRef, app: &str) -> (u32, u32) {
    let state = sim.phone_state(p).await.unwrap();
    let i = live::launcher_icons(&state)
        .iter()
        .position(|a| *a == app)
        .unwrap();
    let r = Layout::new(720, 1280).icon(i);
    ((r.x + r.w / 2) as u32, (r.y + r.h / 2) as u32)
}

fn opts(max_size: u16) -> ScreenOptions {
    ScreenOptions {
        max_size,
        fps: 20,
        images_only: false,
    }
}

#[tokio::test]
async fn input_tap_on_a_launcher_icon_opens_the_app_and_dumpsys_reads_it_back() {
    let (_d, sim, p) = setup().await;
    let (x, y) = icon_of(&sim, &p, "com.android.settings").await;
    let (out, status) = sh(&sim, &p, &format!("input tap {x} {y}")).await;
    assert_eq!((out.as_str(), status), ("", 0));
    let state = sim.phone_state(&p).await.unwrap();
    assert_eq!(state.foreground.as_deref(), Some("com.android.settings"));
    let (window, _) = sh(&sim, &p, "dumpsys window").await;
    assert!(
        window.contains("mCurrentFocus=Window{0 u0 com.android.settings}"),
        "{window}"
    );
    // Back returns to the launcher; text and a deleted character; a swipe and a long press.
    sh(
        &sim,
        &p,
        "input keyevent KEYCODE_BACK; input text 'hi%sthere'; input keyevent 67; \
         input swipe 100 900 600 900 250; input touchscreen swipe 50 50 50 50 800; input keyevent 3",
    )
    .await;
    assert_eq!(
        sim.phone_state(&p).await.unwrap().foreground.as_deref(),
        Some(phone::LAUNCHER)
    );
    assert_eq!(
        input_log(&sim, &p).await,
        [
            format!("tap {x} {y}"),
            "keyevent 4".into(),
            "text hi there".into(),
            "keyevent 67".into(),
            "swipe 100 900 600 900 250".into(),
            "longpress 50 50 800".into(),
            "keyevent 3".into(),
        ]
    );
    // Mistakes are the shell's, as on Android.
    let (out, status) = sh(&sim, &p, "input tap 1").await;
    assert_eq!(status, 1);
    assert!(
        out.contains("Error: Invalid arguments for command: tap"),
        "{out}"
    );
    let (out, status) = sh(&sim, &p, "input keyevent KEYCODE_NOPE").await;
    assert!(status == 1 && out.contains("Unknown keycode"), "{out}");
    let (out, _) = sh(&sim, &p, "dumpsys nosuch").await;
    assert!(out.contains("Can't find service: nosuch"), "{out}");
}

#[tokio::test]
async fn frames_arrive_at_the_stream_size_and_change_over_time() {
    let (_d, sim, p) = setup().await;
    let mut screen = sim.open_screen(&p, opts(640)).await.unwrap();
    assert_eq!((screen.codec, screen.device), (Codec::Png, (720, 1280)));
    let a = screen.frames.recv().await.unwrap();
    let b = screen.frames.recv().await.unwrap();
    assert_eq!(
        (a.width, a.height, a.key, a.rotated),
        (360, 640, true, false)
    );
    assert_eq!(a.shows_input, None);
    assert_ne!(a.data, b.data, "the ticker moves");
    let decoded = screen::tests::decode(&b.data);
    assert_eq!((decoded.width, decoded.height), (360, 640));
    let full = sim
        .open_screen(&p, opts(1280))
        .await
        .unwrap()
        .frames
        .recv()
        .await
        .unwrap();
    assert_eq!((full.width, full.height), (720, 1280));
}

/// Sends one viewer input and waits for it to be applied.
async fn send(screen: &Screen, input: Input, seq: u32) {
    let (done, applied) = tokio::sync::oneshot::channel();
    screen
        .input
        .send(InputEvent {
            input,
            tag: 7,
            seq,
            done: Some(done),
        })
        .await
        .unwrap();
    applied.await.unwrap().unwrap();
}

fn touch(action: TouchAction, x: u32, y: u32) -> Input {
    Input::Touch {
        action,
        x,
        y,
        frame_w: 360,
        frame_h: 640,
    }
}

#[tokio::test]
async fn a_viewer_tap_wakes_a_frame_that_shows_it_where_it_landed() {
    let (_d, sim, p) = setup().await;
    let mut screen = sim.open_screen(&p, opts(640)).await.unwrap();
    screen.frames.recv().await.unwrap();
    // Settings' icon, in the frame's pixels.
    let (x, y) = icon_of(&sim, &p, "com.android.settings").await;
    let (fx, fy) = (x / 2, y / 2);
    send(&screen, touch(TouchAction::Down, fx, fy), 1).await;
    let sent = Instant::now();
    send(&screen, touch(TouchAction::Up, fx, fy), 2).await;
    let frame = loop {
        let f = screen.frames.recv().await.unwrap();
        if f.shows_input == Some((7, 2)) {
            break f;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "no frame showed the tap"
        );
    };
    println!(
        "sim input (a finger lifting) to a frame showing it: {:.1} ms (a frame every 50 ms)",
        sent.elapsed().as_secs_f64() * 1e3
    );
    let canvas: Canvas = screen::tests::decode(&frame.data);
    assert_eq!(canvas.pixel(fx, fy), MARK);
    // The tap opened the app, as RunCommand sees it, in device pixels.
    assert_eq!(
        sim.phone_state(&p).await.unwrap().foreground.as_deref(),
        Some("com.android.settings")
    );
    let log = input_log(&sim, &p).await;
    let (dx, dy) = (fx * 2, fy * 2);
    assert_eq!(log, [format!("tap {dx} {dy}")]);
    // Keys: home, then typing on the launcher's search box, rotation.
    send(&screen, Input::Key(Key::Home), 3).await;
    send(&screen, Input::Text("ab".into()), 4).await;
    send(&screen, Input::Key(Key::Del), 5).await;
    send(&screen, Input::Rotate, 6).await;
    send(&screen, Input::KeyFrame, 7).await;
    assert_eq!(
        &input_log(&sim, &p).await[1..],
        ["keyevent 3", "text ab", "keyevent 67", "rotate 1"]
    );
    let turned = loop {
        let f = screen.frames.recv().await.unwrap();
        if f.shows_input == Some((7, 7)) || f.rotated {
            break f;
        }
    };
    assert!(turned.rotated);
    assert_eq!((turned.width, turned.height), (640, 360));
    let (out, _) = sh(&sim, &p, "dumpsys window").await;
    assert!(out.contains("ROTATION_90 cur=1280x720"), "{out}");
}

#[tokio::test]
async fn dropping_the_screen_ends_its_tasks() {
    let (_d, sim, p) = setup().await;
    let screen = sim.open_screen(&p, opts(640)).await.unwrap();
    let input = screen.input.clone();
    let dir = sim.phone(&p.id);
    assert_eq!(dir.live().renderers(), 1);
    drop(screen);
    let t = Instant::now();
    while !(input.is_closed() && dir.live().renderers() == 0) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the screen's tasks still run"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_stopped_phone_has_no_screen_and_a_reset_forgets_the_input() {
    let (_d, sim, p) = setup().await;
    sh(&sim, &p, "input keyevent 26").await;
    let (out, _) = sh(&sim, &p, "dumpsys power").await;
    assert!(out.contains("mWakefulness=Asleep"), "{out}");
    // A reboot turns the screen on again.
    sim.reboot(&p, false).await.unwrap();
    let (out, _) = sh(&sim, &p, "dumpsys power").await;
    assert!(out.contains("mWakefulness=Awake"), "{out}");
    sim.stop(&p, false).await.unwrap();
    let err = sim.open_screen(&p, opts(640)).await.unwrap_err();
    assert_eq!(err.code, TaskErrorCode::InstanceUnreachable);
    sim.start(&p).await.unwrap();
    assert_eq!(input_log(&sim, &p).await, ["keyevent 26"]);
    sim.reset(&p, ANDROID_14).await.unwrap();
    assert!(input_log(&sim, &p).await.is_empty());
    let missing = phone("acp-nosuch");
    let err = sim.open_screen(&missing, opts(640)).await.unwrap_err();
    assert_eq!(err.code, TaskErrorCode::InstanceUnreachable);
}

#[tokio::test]
async fn screenshots_are_drawn_by_the_same_renderer() {
    let (d, sim, p) = setup().await;
    let shot = |name: &str| d.path().join(name);
    assert_eq!(
        sim.screenshot(&p, &shot("home.png")).await.unwrap(),
        (720, 1280)
    );
    let (x, y) = icon_of(&sim, &p, "com.android.contacts").await;
    sh(&sim, &p, &format!("input tap {x} {y}")).await;
    assert_eq!(
        sim.screenshot(&p, &shot("app.png")).await.unwrap(),
        (720, 1280)
    );
    let app = screen::tests::decode(&std::fs::read(shot("app.png")).unwrap());
    assert_eq!(app.pixel(x, y), MARK, "the tap's mark");
    assert_eq!(
        app.pixel(x, 1200),
        screen::app_color("com.android.contacts")
    );
    sh(&sim, &p, "input keyevent KEYCODE_POWER").await;
    sim.screenshot(&p, &shot("off.png")).await.unwrap();
    let off = screen::tests::decode(&std::fs::read(shot("off.png")).unwrap());
    assert_eq!(off.pixel(10, 10), [0, 0, 0]);
}

#[tokio::test]
async fn a_second_node_over_the_same_data_dir_sees_the_input() {
    let (d, a, p) = setup().await;
    let b = sim(&d.path().join("sim"));
    let mut seen_on_b = b.open_screen(&p, opts(640)).await.unwrap();
    let first = seen_on_b.frames.recv().await.unwrap();
    let (x, y) = icon_of(&a, &p, "com.android.chrome").await;
    sh(&a, &p, &format!("input tap {x} {y}")).await;
    assert_eq!(input_log(&b, &p).await, [format!("tap {x} {y}")]);
    // B's renderer reads the change on its next tick: the app's screen and the mark.
    let t = Instant::now();
    loop {
        let f = seen_on_b.frames.recv().await.unwrap();
        let c = screen::tests::decode(&f.data);
        if c.pixel(x / 2, y / 2) == MARK {
            assert_ne!(f.data, first.data);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "B never showed A's tap"
        );
    }
    // And input applied on B builds on A's.
    sh(&b, &p, "input keyevent 4").await;
    assert_eq!(input_log(&a, &p).await.len(), 2);
    assert_eq!(
        a.phone_state(&p).await.unwrap().foreground.as_deref(),
        Some(phone::LAUNCHER)
    );
}
