//! Tests of the renderer: what a frame shows, read back from the decoded PNG.

use cloudphone_backend::TouchAction;

use super::*;
use crate::sim::live::{Act, Ctx};

const DEVICE: (u32, u32) = (720, 1280);

pub(crate) fn decode(png_bytes: &[u8]) -> Canvas {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    Canvas {
        width: info.width,
        height: info.height,
        rgb: buf,
    }
}

fn frame(phone: &PhoneState, live: &LiveState, size: (u32, u32), tick: u64, now_ms: i64) -> Canvas {
    let scene = Scene {
        name: "phone-1",
        device: DEVICE,
        phone,
        live,
        now_ms,
        clock: "12:34:56",
        tick,
    };
    let bytes = Renderer::default().draw(&scene, size).frame_png().unwrap();
    decode(&bytes)
}

#[test]
fn the_launcher_and_an_app_differ_and_the_status_bar_shows_the_time() {
    let live = LiveState::default();
    let mut phone = PhoneState::fresh();
    let home = frame(&phone, &live, DEVICE, 0, 0);
    phone.start_app("com.android.settings");
    let app = frame(&phone, &live, DEVICE, 0, 0);
    assert_eq!((home.width, home.height), DEVICE);
    assert_ne!(home.rgb, app.rgb);
    assert_eq!(home.pixel(0, 0), BLACK);
    assert!((0..36).any(|y| (0..720).any(|x| home.pixel(x, y) == WHITE)));
    assert_eq!(app.pixel(360, 900), app_color("com.android.settings"));
    // Stopped, the phone shows nothing.
    phone.halt();
    let off = frame(&phone, &live, DEVICE, 0, 0);
    assert!(off.rgb.iter().all(|&v| v == 0));
}

#[test]
fn consecutive_frames_differ_by_the_ticker() {
    let (phone, live) = (PhoneState::fresh(), LiveState::default());
    let a = frame(&phone, &live, (360, 640), 1, 0);
    let b = frame(&phone, &live, (360, 640), 2, 0);
    assert_ne!(a.rgb, b.rgb);
    // Only in the status bar.
    let bar = 360 * 3 * Layout::new(360, 640).status_bar().h as usize;
    assert_eq!(a.rgb[bar..], b.rgb[bar..]);
}

#[test]
fn a_tap_is_marked_magenta_at_its_point_scaled_to_the_frame() {
    let mut phone = PhoneState::fresh();
    phone.start_app("com.android.settings");
    let mut live = LiveState::default();
    let ctx = Ctx {
        now_ms: 10_000,
        device: DEVICE,
    };
    // A viewer of a 360x640 frame taps (100, 500): the device's (200, 1000).
    for action in [TouchAction::Down, TouchAction::Up] {
        let act = Act::Touch {
            action,
            x: 100,
            y: 500,
            frame: (360, 640),
        };
        live.apply(Some(&mut phone), act, &ctx, Some((3, 9)));
    }
    assert_eq!(live.log.back().unwrap(), "tap 200 1000");
    let small = frame(&phone, &live, (360, 640), 0, 10_100);
    assert_eq!(small.pixel(100, 500), MARK);
    let (r, border) = Layout::new(360, 640).mark();
    assert_eq!(small.pixel(100 + r as u32 + 1, 500), WHITE, "the border");
    let settings = app_color("com.android.settings");
    assert_eq!(small.pixel(100 + (r + border) as u32 + 2, 500), settings);
    let big = frame(&phone, &live, DEVICE, 0, 10_100);
    assert_eq!(big.pixel(200, 1000), MARK);
    // Gone after 3 s.
    let later = frame(&phone, &live, DEVICE, 0, 10_000 + MARK_MS);
    assert_eq!(later.pixel(200, 1000), settings);
}

#[test]
fn a_turned_phone_draws_landscape_frames_with_marks_in_place() {
    let mut phone = PhoneState::fresh();
    let mut live = LiveState::default();
    let ctx = Ctx {
        now_ms: 0,
        device: DEVICE,
    };
    live.apply(Some(&mut phone), Act::Rotate, &ctx, None);
    let tap = Act::Gesture {
        path: vec![(1000, 600)],
        duration_ms: 0,
    };
    live.apply(Some(&mut phone), tap, &ctx, None);
    let f = frame(&phone, &live, (640, 360), 0, 0);
    assert_eq!((f.width, f.height), (640, 360));
    assert_eq!(f.pixel(500, 300), MARK);
}

#[test]
fn text_recents_and_volume_show() {
    let mut phone = PhoneState::fresh();
    phone.start_app("com.android.contacts");
    let mut live = LiveState::default();
    let ctx = Ctx {
        now_ms: 0,
        device: DEVICE,
    };
    let empty = frame(&phone, &live, DEVICE, 0, 0);
    live.apply(Some(&mut phone), Act::Text("hello".into()), &ctx, None);
    let typed = frame(&phone, &live, DEVICE, 0, 0);
    let field = Layout::new(720, 1280).text_field();
    let inside = |c: &Canvas| {
        let mut v = Vec::new();
        for y in field.y..field.y + field.h {
            for x in field.x..field.x + field.w {
                v.push(c.pixel(x as u32, y as u32));
            }
        }
        v
    };
    assert_ne!(inside(&empty), inside(&typed));
    live.apply(Some(&mut phone), Act::Key(24), &ctx, None);
    let hud = Layout::new(720, 1280).volume_hud();
    let f = frame(&phone, &live, DEVICE, 0, 100);
    assert_eq!(
        f.pixel((hud.x + hud.w / 2) as u32, (hud.y + hud.h - 2) as u32),
        WHITE
    );
    live.apply(Some(&mut phone), Act::Key(187), &ctx, None);
    let f = frame(&phone, &live, DEVICE, 0, 5000);
    let card = Layout::new(720, 1280).recents_row(0);
    assert_eq!(f.pixel(card.x as u32 + 1, card.y as u32 + 1), [62, 62, 70]);
}

/// Frames of an app screen with text and marks, at the stream's two usual sizes, come out as
/// PNGs of the size asked; their render and encode time is printed (`cargo test --release -p
/// cloudphone-backends render_cost -- --nocapture`; the figures in docs/design.md §14.3 come
/// from 200 frames a size: `CLOUDPHONE_RENDER_FRAMES=200`).
#[test]
fn render_cost() {
    let mut phone = PhoneState::fresh();
    let mut live = LiveState::default();
    let ctx = Ctx {
        now_ms: 0,
        device: DEVICE,
    };
    phone.start_app("com.android.contacts");
    live.apply(
        Some(&mut phone),
        Act::Text("hello world".into()),
        &ctx,
        None,
    );
    for i in 0..8 {
        let tap = Act::Gesture {
            path: vec![(80 * i + 40, 700)],
            duration_ms: 0,
        };
        live.apply(Some(&mut phone), tap, &ctx, None);
    }
    for size in [(720, 1280), (360, 640)] {
        let mut renderer = Renderer::default();
        let n: u64 = std::env::var("CLOUDPHONE_RENDER_FRAMES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        let (mut draw, mut encode, mut bytes) = (0f64, 0f64, 0usize);
        for tick in 0..n {
            let scene = Scene {
                name: "phone-1",
                device: DEVICE,
                phone: &phone,
                live: &live,
                now_ms: 100,
                clock: "12:34:56",
                tick,
            };
            let t = std::time::Instant::now();
            let canvas = renderer.draw(&scene, size);
            let drawn = t.elapsed();
            let png = canvas.frame_png().unwrap();
            encode += (t.elapsed() - drawn).as_secs_f64();
            // The IHDR chunk's width and height, right after the signature and chunk head.
            let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
            assert_eq!(
                (&png[12..16], be(16), be(20)),
                (&b"IHDR"[..], size.0, size.1)
            );
            draw += drawn.as_secs_f64();
            bytes += png.len();
        }
        let n = n as f64;
        println!(
            "sim frame {}x{}: draw {:.3} ms + encode {:.3} ms = {:.3} ms, {:.1} KB",
            size.0,
            size.1,
            draw / n * 1e3,
            encode / n * 1e3,
            (draw + encode) / n * 1e3,
            bytes as f64 / n / 1024.0
        );
    }
}
