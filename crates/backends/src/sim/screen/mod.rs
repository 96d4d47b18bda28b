//! The simulated phone's screen: a real PNG at the phone's display resolution, drawn from its
//! state: a status bar with the time, the phone's name, and the foreground app (or the launcher's
//! grid of icons when no app is in front).

use std::io::BufWriter;
use std::path::Path;

use font8x8::UnicodeFonts;

/// What the screen shows.
pub struct Screen<'a> {
    pub width: u32,
    pub height: u32,
    pub name: &'a str,
    pub foreground: Option<&'a str>,
    /// `HH:MM` in the status bar.
    pub time: &'a str,
}

struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32, color: [u8; 3]) -> Canvas {
        let rgb = color.repeat((width * height) as usize);
        Canvas { width, height, rgb }
    }

    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                let i = ((yy * self.width + xx) * 3) as usize;
                self.rgb[i..i + 3].copy_from_slice(&color);
            }
        }
    }

    /// Writes `text` with the 8x8 font scaled by `scale`, clipped to the canvas.
    fn text(&mut self, x: u32, y: u32, scale: u32, text: &str, color: [u8; 3]) {
        for (n, c) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(c)
                .or_else(|| font8x8::BASIC_FONTS.get('?'));
            let Some(glyph) = glyph else { continue };
            let gx = x + n as u32 * 8 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.rect(
                            gx + col * scale,
                            y + row as u32 * scale,
                            scale,
                            scale,
                            color,
                        );
                    }
                }
            }
        }
    }

    fn write_png(&self, path: &Path) -> std::io::Result<()> {
        let file = std::fs::File::create(path)?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&self.rgb)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    }
}

/// A stable colour for an app, so that each app's screen looks its own.
fn app_color(name: &str) -> [u8; 3] {
    let h = name.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    [
        64 + (h & 0x7f) as u8,
        64 + ((h >> 8) & 0x7f) as u8,
        64 + ((h >> 16) & 0x7f) as u8,
    ]
}

/// Draws `screen` and writes it to `path` as a PNG.
pub fn render(screen: &Screen<'_>, path: &Path) -> std::io::Result<()> {
    let (w, h) = (screen.width, screen.height);
    let scale = (w / 240).max(1);
    let bar = 12 * scale;
    let background = match screen.foreground {
        Some(app) if !app.contains("launcher") => app_color(app),
        _ => [24, 32, 48],
    };
    let mut canvas = Canvas::new(w, h, background);
    canvas.rect(0, 0, w, bar, [0, 0, 0]);
    canvas.text(4 * scale, 2 * scale, scale, screen.time, [255, 255, 255]);
    let white = [250, 250, 250];
    canvas.text(8 * scale, bar + 16 * scale, scale * 2, screen.name, white);
    match screen.foreground {
        Some(app) if !app.contains("launcher") => {
            canvas.text(8 * scale, bar + 48 * scale, scale, app, white);
        }
        _ => {
            // The launcher: a grid of icons.
            let icon = 40 * scale;
            for row in 0..4 {
                for col in 0..4 {
                    let x = 16 * scale + col * (icon + 16 * scale);
                    let y = bar + 80 * scale + row * (icon + 24 * scale);
                    canvas.rect(x, y, icon, icon, app_color(&format!("{row}{col}")));
                }
            }
        }
    }
    canvas.write_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_png_of_the_right_size_that_differs_by_app() {
        let dir = tempfile::tempdir().unwrap();
        let draw = |foreground, file: &str| {
            let path = dir.path().join(file);
            render(
                &Screen {
                    width: 720,
                    height: 1280,
                    name: "phone-1",
                    foreground,
                    time: "12:34",
                },
                &path,
            )
            .unwrap();
            let decoder =
                png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), (720, 1280));
            buf.truncate(info.buffer_size());
            buf
        };
        let home = draw(None, "home.png");
        let app = draw(Some("com.example.app"), "app.png");
        assert_ne!(home, app);
        // The status bar is black and the text in it is white somewhere.
        assert_eq!(&home[..3], &[0, 0, 0]);
        assert!(home[..720 * 3 * 36].chunks(3).any(|p| p == [255, 255, 255]));
    }
}
