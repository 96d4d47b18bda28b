//! An RGB pixel buffer and the few shapes the simulated screen is drawn with: filled
//! rectangles, 8x8-font text, discs, rings and thick lines (these three blended, so a touch mark
//! can fade), and its encoding as a PNG. Everything clips to the canvas.

use font8x8::UnicodeFonts;

pub type Rgb = [u8; 3];

pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, color: Rgb) -> Canvas {
        Canvas {
            width,
            height,
            rgb: color.repeat((width * height) as usize),
        }
    }

    /// Takes the size and pixels of `other` (a cached layer), reusing this buffer.
    pub fn copy_from(&mut self, other: &Canvas) {
        self.width = other.width;
        self.height = other.height;
        self.rgb.clear();
        self.rgb.extend_from_slice(&other.rgb);
    }

    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    pub fn fill(&mut self, color: Rgb) {
        for px in self.rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&color);
        }
    }

    pub fn rect(&mut self, x: i32, y: i32, w: i32, h: i32, color: Rgb) {
        let (x0, x1) = (x.max(0), (x + w).min(self.width as i32));
        let (y0, y1) = (y.max(0), (y + h).min(self.height as i32));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let stride = self.width as usize * 3;
        for yy in y0..y1 {
            let row = yy as usize * stride;
            let span = &mut self.rgb[row + x0 as usize * 3..row + x1 as usize * 3];
            for px in span.chunks_exact_mut(3) {
                px.copy_from_slice(&color);
            }
        }
    }

    /// The outline of a rectangle, `t` pixels thick, inside it.
    pub fn frame(&mut self, x: i32, y: i32, w: i32, h: i32, t: i32, color: Rgb) {
        self.rect(x, y, w, t, color);
        self.rect(x, y + h - t, w, t, color);
        self.rect(x, y, t, h, color);
        self.rect(x + w - t, y, t, h, color);
    }

    /// Writes `text` with the 8x8 font scaled by `scale`; `?` for what the font lacks.
    pub fn text(&mut self, x: i32, y: i32, scale: u32, text: &str, color: Rgb) {
        let s = scale.max(1) as i32;
        for (n, c) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(c)
                .or_else(|| font8x8::BASIC_FONTS.get('?'));
            let Some(glyph) = glyph else { continue };
            let gx = x + n as i32 * 8 * s;
            if gx >= self.width as i32 {
                break;
            }
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.rect(gx + col * s, y + row as i32 * s, s, s, color);
                    }
                }
            }
        }
    }

    /// Mixes `color` into one pixel with `alpha` (0..=255); outside the canvas, nothing.
    fn blend(&mut self, x: i32, y: i32, color: Rgb, alpha: u8) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        let px = &mut self.rgb[i..i + 3];
        if alpha == 255 {
            px.copy_from_slice(&color);
            return;
        }
        let a = u16::from(alpha);
        for (p, c) in px.iter_mut().zip(color) {
            *p = ((u16::from(c) * a + u16::from(*p) * (255 - a) + 127) / 255) as u8;
        }
    }

    /// Every pixel whose centre lies within `r_in..=r_out` of `(cx, cy)`.
    fn annulus(&mut self, cx: i32, cy: i32, r_in: i32, r_out: i32, color: Rgb, alpha: u8) {
        let (inner, outer) = (r_in * r_in, r_out * r_out);
        for dy in -r_out..=r_out {
            let y = cy + dy;
            if y < 0 || y >= self.height as i32 {
                continue;
            }
            for dx in -r_out..=r_out {
                let d = dx * dx + dy * dy;
                if d <= outer && (r_in <= 0 || d >= inner) {
                    self.blend(cx + dx, y, color, alpha);
                }
            }
        }
    }

    pub fn disc(&mut self, cx: i32, cy: i32, r: i32, color: Rgb, alpha: u8) {
        self.annulus(cx, cy, 0, r, color, alpha);
    }

    /// A ring of outer radius `r`, `t` pixels thick.
    pub fn ring(&mut self, cx: i32, cy: i32, r: i32, t: i32, color: Rgb, alpha: u8) {
        self.annulus(cx, cy, (r - t).max(1), r, color, alpha);
    }

    /// A line `t` pixels thick from `a` to `b`, as squares stamped along it.
    pub fn line(&mut self, a: (i32, i32), b: (i32, i32), t: i32, color: Rgb, alpha: u8) {
        let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).max(1);
        let half = t / 2;
        // Blending one pixel twice would darken it: stamp each square only where the previous
        // one did not reach (a step moves at most one pixel on each axis).
        let mut last: Option<(i32, i32)> = None;
        for s in 0..=steps {
            let x = a.0 + (b.0 - a.0) * s / steps;
            let y = a.1 + (b.1 - a.1) * s / steps;
            for dy in -half..t - half {
                for dx in -half..t - half {
                    let covered = last.is_some_and(|(lx, ly)| {
                        (x + dx - lx) >= -half
                            && (x + dx - lx) < t - half
                            && (y + dy - ly) >= -half
                            && (y + dy - ly) < t - half
                    });
                    if !covered {
                        self.blend(x + dx, y + dy, color, alpha);
                    }
                }
            }
            last = Some((x, y));
        }
    }

    /// The canvas as a live screen's frame ([`cloudphone_backend::screen::encode_png`]).
    pub fn frame_png(&self) -> std::io::Result<Vec<u8>> {
        cloudphone_backend::screen::encode_png(&self.rgb, self.width, self.height)
    }

    /// The canvas as an 8-bit RGB PNG file.
    pub fn png(&self, compression: png::Compression) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 << 10);
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(compression);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&self.rgb)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_clip_and_blend() {
        let mut c = Canvas::new(20, 10, [0, 0, 0]);
        c.rect(-5, -5, 10, 10, [255, 0, 0]);
        assert_eq!(c.pixel(4, 4), [255, 0, 0]);
        assert_eq!(c.pixel(5, 5), [0, 0, 0]);
        c.disc(15, 5, 3, [0, 0, 255], 255);
        assert_eq!(c.pixel(15, 5), [0, 0, 255]);
        assert_eq!(c.pixel(15, 9), [0, 0, 0]);
        c.disc(15, 5, 1, [255, 255, 255], 128);
        assert_eq!(c.pixel(15, 5), [128, 128, 255]);
        // A line blends each pixel once, however its squares overlap.
        let mut l = Canvas::new(20, 20, [0, 0, 0]);
        l.line((2, 2), (17, 9), 4, [200, 200, 200], 128);
        assert!(l.rgb.iter().all(|&v| v == 0 || v == 100));
        assert_eq!(l.pixel(2, 2), [100, 100, 100]);
        // Text past the right edge is dropped, not wrapped.
        c.text(18, 0, 1, "WW", [9, 9, 9]);
    }
}
