//! The simulated phone's screen, drawn from its state for the live stream and for
//! CreateScreenshot alike: a status bar (the time, a battery, and a ticker that moves one step a
//! frame so that consecutive frames differ), then the launcher (the phone's name, a search box
//! and a grid of icons) or the foreground app's screen (its colour, name and text field), then
//! what input shows: the text typed, recents, the volume HUD and a magenta mark where each of
//! the last touches landed. The layer under the overlays is cached per app, size and icons, so a
//! frame is mostly a copy, the overlays, and the PNG encoding.

pub mod canvas;
pub mod layout;

use cloudphone_backend::screen::GestureKind;

use super::live::{Gesture, LiveState, MARK_MS, MAX_VOLUME, is_off, launcher_icons, recent_apps};
use super::phone::{LAUNCHER, PhoneState};
use canvas::{Canvas, Rgb};
use layout::Layout;

/// The colour of a touch mark: a test finds it at the point it touched.
pub const MARK: Rgb = [255, 0, 255];
const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const LAUNCHER_BG: Rgb = [24, 32, 48];
const SEARCH_BG: Rgb = [40, 52, 72];
const FIELD_BG: Rgb = [250, 250, 250];

/// What one frame shows.
pub struct Scene<'a> {
    pub name: &'a str,
    /// The device's size in portrait.
    pub device: (u32, u32),
    pub phone: &'a PhoneState,
    pub live: &'a LiveState,
    pub now_ms: i64,
    /// `HH:MM:SS` in the status bar.
    pub clock: &'a str,
    /// The frame's number, which moves the ticker.
    pub tick: u64,
}

/// The layer under the overlays, which changes only when the app or the icons do.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Background {
    Off,
    Launcher { name: String, icons: Vec<String> },
    App(String),
}

/// Draws frames, keeping the last background layer for the next.
#[derive(Default)]
pub struct Renderer {
    layer: Option<(Background, Canvas)>,
    canvas: Option<Canvas>,
}

impl Renderer {
    /// Draws `scene` at `size` (which has the display's orientation).
    pub fn draw(&mut self, scene: &Scene<'_>, size: (u32, u32)) -> &Canvas {
        let layout = Layout::new(size.0, size.1);
        let background = background_of(scene);
        let Renderer { layer, canvas } = self;
        let fresh = match layer {
            Some((b, c)) => *b != background || (c.width, c.height) != size,
            None => true,
        };
        if fresh {
            let drawn = draw_background(&background, &layout);
            *layer = Some((background.clone(), drawn));
        }
        let base = &layer.as_ref().expect("drawn above").1;
        let canvas = canvas.get_or_insert_with(|| Canvas::new(0, 0, BLACK));
        canvas.copy_from(base);
        draw_overlays(canvas, scene, &background, &layout);
        canvas
    }
}

/// A stable colour for an app, so that each app's screen looks its own.
pub fn app_color(name: &str) -> Rgb {
    let h = name.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    [
        64 + (h & 0x7f) as u8,
        64 + ((h >> 8) & 0x7f) as u8,
        64 + ((h >> 16) & 0x7f) as u8,
    ]
}

/// The short name an app goes by on screen: its package's last part.
fn label(package: &str) -> &str {
    package.rsplit('.').next().unwrap_or(package)
}

fn darker(c: Rgb) -> Rgb {
    c.map(|v| (u16::from(v) * 3 / 5) as u8)
}

fn background_of(scene: &Scene<'_>) -> Background {
    if !scene.live.screen_on || is_off(scene.phone) {
        return Background::Off;
    }
    match scene.phone.foreground.as_deref() {
        Some(LAUNCHER) | None => Background::Launcher {
            name: scene.name.to_string(),
            icons: launcher_icons(scene.phone)
                .into_iter()
                .map(String::from)
                .collect(),
        },
        Some(app) => Background::App(app.to_string()),
    }
}

fn draw_background(background: &Background, l: &Layout) -> Canvas {
    let (font, small) = (l.font(), l.small_font());
    match background {
        Background::Off => Canvas::new(l.width, l.height, BLACK),
        Background::Launcher { name, icons } => {
            let mut c = Canvas::new(l.width, l.height, LAUNCHER_BG);
            let (x, y) = l.name_at();
            c.text(x, y, 2 * font, name, WHITE);
            let b = l.search_box();
            c.rect(b.x, b.y, b.w, b.h, SEARCH_BG);
            c.frame(b.x, b.y, b.w, b.h, l.px(1.0).max(1), [90, 110, 140]);
            for (i, app) in icons.iter().enumerate() {
                let r = l.icon(i);
                c.rect(r.x, r.y, r.w, r.h, app_color(app));
                let (x, y, chars) = l.label(i);
                let text: String = label(app).chars().take(chars).collect();
                c.text(x, y, small, &text, [220, 220, 220]);
            }
            c
        }
        Background::App(app) => {
            let color = app_color(app);
            let mut c = Canvas::new(l.width, l.height, color);
            let bar = l.app_bar();
            c.rect(bar.x, bar.y, bar.w, bar.h, darker(color));
            let (x, y) = l.app_title_at();
            c.text(x, y, font, label(app), WHITE);
            let (x, y) = l.app_package_at();
            c.text(x, y, small, app, WHITE);
            let f = l.text_field();
            c.rect(f.x, f.y, f.w, f.h, FIELD_BG);
            c.frame(f.x, f.y, f.w, f.h, l.px(1.0).max(1), darker(color));
            c
        }
    }
}

fn draw_overlays(c: &mut Canvas, scene: &Scene<'_>, background: &Background, l: &Layout) {
    if *background != Background::Off {
        status_bar(c, scene, l);
        typed_text(c, scene, background, l);
        if scene.live.recents_open {
            recents(c, scene.phone, l);
        }
    }
    if scene.now_ms < scene.live.volume_shown_until_ms {
        volume(c, scene.live.volume, l);
    }
    marks(c, scene, l);
}

fn status_bar(c: &mut Canvas, scene: &Scene<'_>, l: &Layout) {
    let bar = l.status_bar();
    c.rect(0, 0, bar.w, bar.h, BLACK);
    c.text(l.px(4.0), l.px(2.0), l.font(), scene.clock, WHITE);
    // A battery, mostly full.
    let (bw, bh) = (l.px(14.0).max(6), l.px(6.0).max(3));
    let (bx, by) = (bar.w - bw - l.px(4.0), (bar.h - bh) / 2);
    c.frame(bx, by, bw, bh, 1, WHITE);
    c.rect(bx + 2, by + 2, (bw - 4) * 4 / 5, bh - 4, WHITE);
    // The ticker: one step a frame across 16 places.
    let step = l.px(4.0).max(2);
    let dot = (step / 2).max(2);
    let x = bar.w / 2 - 8 * step + (scene.tick % 16) as i32 * step;
    c.rect(x, (bar.h - dot) / 2, dot, dot, [120, 200, 255]);
}

fn typed_text(c: &mut Canvas, scene: &Scene<'_>, background: &Background, l: &Layout) {
    let text = scene.live.shown_text(scene.phone);
    if text.is_empty() {
        return;
    }
    let font = l.font();
    let glyph = 8 * font as i32;
    match background {
        Background::Launcher { .. } => {
            let b = l.search_box();
            let pad = l.px(4.0);
            let room = ((b.w - 2 * pad) / glyph).max(1) as usize;
            let flat: Vec<char> = text
                .chars()
                .map(|ch| if ch == '\n' { ' ' } else { ch })
                .collect();
            let tail: String = flat[flat.len().saturating_sub(room)..].iter().collect();
            c.text(b.x + pad, b.y + (b.h - glyph) / 2, font, &tail, WHITE);
        }
        Background::App(_) => {
            let f = l.text_field();
            let pad = l.px(4.0);
            let cols = ((f.w - 2 * pad) / glyph).max(1) as usize;
            let rows = ((f.h - 2 * pad) / (glyph + font as i32 * 2)).max(1) as usize;
            let lines = wrap(text, cols);
            for (n, line) in lines[lines.len().saturating_sub(rows)..].iter().enumerate() {
                let y = f.y + pad + n as i32 * (glyph + font as i32 * 2);
                c.text(f.x + pad, y, font, line, [20, 20, 20]);
            }
        }
        Background::Off => {}
    }
}

/// `text` as lines of at most `cols` characters, broken at newlines and where they fill.
fn wrap(text: &str, cols: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let chars: Vec<char> = para.chars().collect();
        if chars.is_empty() {
            lines.push(String::new());
        }
        for chunk in chars.chunks(cols) {
            lines.push(chunk.iter().collect());
        }
    }
    lines
}

fn recents(c: &mut Canvas, phone: &PhoneState, l: &Layout) {
    let top = l.status_bar().h;
    c.rect(0, top, l.width as i32, l.height as i32 - top, [30, 30, 34]);
    let apps = recent_apps(phone);
    if apps.is_empty() {
        let r = l.recents_row(0);
        c.text(r.x, r.y, l.font(), "No recent items", [200, 200, 200]);
        return;
    }
    for (i, app) in apps.iter().take(l.recents_rows()).enumerate() {
        let r = l.recents_row(i);
        c.rect(r.x, r.y, r.w, r.h, [62, 62, 70]);
        let swatch = r.h - 2 * l.px(6.0);
        c.rect(
            r.x + l.px(6.0),
            r.y + l.px(6.0),
            swatch,
            swatch,
            app_color(app),
        );
        let glyph = 8 * l.font() as i32;
        c.text(
            r.x + swatch + l.px(12.0),
            r.y + (r.h - glyph) / 2,
            l.font(),
            label(app),
            WHITE,
        );
    }
}

fn volume(c: &mut Canvas, level: u8, l: &Layout) {
    let r = l.volume_hud();
    c.rect(r.x, r.y, r.w, r.h, [40, 40, 40]);
    let filled = r.h * i32::from(level) / i32::from(MAX_VOLUME);
    c.rect(r.x, r.y + r.h - filled, r.w, filled, WHITE);
    c.frame(r.x, r.y, r.w, r.h, 1, [160, 160, 160]);
}

fn marks(c: &mut Canvas, scene: &Scene<'_>, l: &Layout) {
    let live = scene.live;
    let display = live.display(scene.device);
    let k = l.width as f32 / display.0.max(1) as f32;
    let at = |(x, y): (u32, u32)| ((x as f32 * k).round() as i32, (y as f32 * k).round() as i32);
    let (r, border) = l.mark();
    let n = live.touches.len();
    for (i, g) in live.touches.iter().enumerate() {
        let age = (scene.now_ms - g.at_ms).max(0);
        if age >= MARK_MS {
            continue;
        }
        // The newest stays whole for its 3 s; the others fade in their second half.
        let newest = i + 1 == n && live.finger.is_none();
        let alpha = if newest || age < MARK_MS / 2 {
            255
        } else {
            ((MARK_MS - age) * 255 / (MARK_MS / 2)) as u8
        };
        gesture(c, g, &at, r, border, alpha, newest);
    }
    if let Some(f) = &live.finger {
        polyline(c, &f.path, &at, (r / 3).max(2), 255);
        if let Some(&p) = f.path.last() {
            let (x, y) = at(p);
            c.disc(x, y, r + border, WHITE, 255);
            c.disc(x, y, r, MARK, 255);
        }
    }
}

fn polyline(
    c: &mut Canvas,
    path: &[(u32, u32)],
    at: &dyn Fn((u32, u32)) -> (i32, i32),
    t: i32,
    alpha: u8,
) {
    for w in path.windows(2) {
        c.line(at(w[0]), at(w[1]), t, MARK, alpha);
    }
}

fn gesture(
    c: &mut Canvas,
    g: &Gesture,
    at: &dyn Fn((u32, u32)) -> (i32, i32),
    r: i32,
    border: i32,
    alpha: u8,
    newest: bool,
) {
    let Some(&start) = g.path.first() else { return };
    match g.kind {
        GestureKind::Tap => {
            let (x, y) = at(start);
            if newest {
                c.disc(x, y, r + border, WHITE, 255);
            }
            c.disc(x, y, r, MARK, alpha);
        }
        GestureKind::LongPress => {
            let (x, y) = at(start);
            let t = (r / 4).max(2);
            if newest {
                c.disc(x, y, r / 2 + border, WHITE, 255);
            }
            c.disc(x, y, r / 2, MARK, alpha);
            c.ring(x, y, r, t, MARK, alpha);
            c.ring(x, y, r * 5 / 3, t, MARK, alpha);
        }
        GestureKind::Swipe => {
            polyline(c, &g.path, at, (r / 3).max(2), alpha);
            let (x, y) = at(*g.path.last().unwrap_or(&start));
            let dot = r * 2 / 3;
            if newest {
                c.disc(x, y, dot + border, WHITE, 255);
            }
            c.disc(x, y, dot, MARK, alpha);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
