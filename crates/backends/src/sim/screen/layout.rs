//! Where things are on the simulated screen, for a screen of any size: the renderer draws at
//! these places and the input model hit-tests the same ones in device pixels, so a tap lands on
//! the icon the viewer sees. Positions are in units of 1/240 of the short side, so the layout
//! of a frame is the device's scaled (up to rounding).

/// Icons on the launcher: 4x4 in portrait, 8x2 in landscape.
pub const ICONS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        let (x, y) = (x as i64, y as i64);
        x >= self.x as i64
            && x < (self.x + self.w) as i64
            && y >= self.y as i64
            && y < (self.y + self.h) as i64
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// Pixels per unit.
    u: f32,
    pub landscape: bool,
}

impl Layout {
    pub fn new(width: u32, height: u32) -> Layout {
        Layout {
            width,
            height,
            u: width.min(height).max(1) as f32 / 240.0,
            landscape: width > height,
        }
    }

    /// `v` units in pixels.
    pub fn px(&self, v: f32) -> i32 {
        (v * self.u).round() as i32
    }

    /// The font's scale for body text (the 8x8 font only scales by whole pixels).
    pub fn font(&self) -> u32 {
        (self.u.floor() as u32).max(1)
    }

    /// The font's scale for small labels.
    pub fn small_font(&self) -> u32 {
        ((self.u / 2.0).floor() as u32).max(1)
    }

    fn w_units(&self) -> f32 {
        self.width as f32 / self.u
    }

    pub fn status_bar(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: self.width as i32,
            h: self.px(12.0),
        }
    }

    fn below_bar(&self, units: f32) -> i32 {
        self.status_bar().h + self.px(units)
    }

    /// Where the launcher writes the phone's name (twice the body font).
    pub fn name_at(&self) -> (i32, i32) {
        let y = if self.landscape { 6.0 } else { 16.0 };
        (self.px(8.0), self.below_bar(y))
    }

    pub fn search_box(&self) -> Rect {
        let (y, h) = if self.landscape {
            (26.0, 20.0)
        } else {
            (44.0, 24.0)
        };
        Rect {
            x: self.px(16.0),
            y: self.below_bar(y),
            w: self.width as i32 - self.px(32.0),
            h: self.px(h),
        }
    }

    fn cols(&self) -> usize {
        if self.landscape { 8 } else { 4 }
    }

    /// The launcher's `i`th icon (row by row).
    pub fn icon(&self, i: usize) -> Rect {
        let cols = self.cols();
        let (col, row) = ((i % cols) as f32, (i / cols) as f32);
        let gap = (self.w_units() - cols as f32 * 40.0) / (cols as f32 + 1.0);
        let top = if self.landscape { 56.0 } else { 80.0 };
        Rect {
            x: self.px(gap + col * (40.0 + gap)),
            y: self.below_bar(top + row * 64.0),
            w: self.px(40.0),
            h: self.px(40.0),
        }
    }

    /// Where the `i`th icon's label starts, and how many characters of the small font fit.
    pub fn label(&self, i: usize) -> (i32, i32, usize) {
        let icon = self.icon(i);
        let gap = self.px(4.0);
        let room = icon.w + 2 * gap;
        let chars = (room / (8 * self.small_font() as i32)).max(1) as usize;
        (icon.x - gap, icon.y + icon.h + self.px(4.0), chars)
    }

    /// Which icon holds the point, if any.
    pub fn icon_at(&self, x: u32, y: u32) -> Option<usize> {
        (0..ICONS).find(|&i| self.icon(i).contains(x, y))
    }

    /// The app's title band under the status bar.
    pub fn app_bar(&self) -> Rect {
        Rect {
            x: 0,
            y: self.status_bar().h,
            w: self.width as i32,
            h: self.px(40.0),
        }
    }

    pub fn app_title_at(&self) -> (i32, i32) {
        (self.px(8.0), self.below_bar(12.0))
    }

    pub fn app_package_at(&self) -> (i32, i32) {
        (self.px(8.0), self.below_bar(48.0))
    }

    /// The app's text field, which shows what was typed.
    pub fn text_field(&self) -> Rect {
        let top = self.below_bar(64.0);
        let room = self.height as i32 - top - self.px(8.0);
        Rect {
            x: self.px(8.0),
            y: top,
            w: self.width as i32 - self.px(16.0),
            h: self.px(136.0).min(room).max(1),
        }
    }

    /// The recents list's `i`th card.
    pub fn recents_row(&self, i: usize) -> Rect {
        Rect {
            x: self.px(16.0),
            y: self.below_bar(16.0 + i as f32 * 56.0),
            w: self.width as i32 - self.px(32.0),
            h: self.px(48.0),
        }
    }

    /// How many cards fit on the screen.
    pub fn recents_rows(&self) -> usize {
        (0..64)
            .take_while(|&i| {
                let r = self.recents_row(i);
                r.y + r.h <= self.height as i32
            })
            .count()
    }

    pub fn recents_row_at(&self, x: u32, y: u32) -> Option<usize> {
        (0..self.recents_rows()).find(|&i| self.recents_row(i).contains(x, y))
    }

    pub fn volume_hud(&self) -> Rect {
        let top = self.below_bar(40.0);
        let room = self.height as i32 - top - self.px(8.0);
        Rect {
            x: self.width as i32 - self.px(28.0),
            y: top,
            w: self.px(12.0),
            h: self.px(120.0).min(room).max(1),
        }
    }

    /// A tap mark's radius (18 px on a 720-px-wide screen) and its border's width.
    pub fn mark(&self) -> (i32, i32) {
        (self.px(6.0).max(4), self.px(1.0).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icons_fit_on_screen_in_both_orientations_and_scale_with_it() {
        for (w, h) in [(720, 1280), (1280, 720), (360, 640), (1080, 1920)] {
            let l = Layout::new(w, h);
            for i in 0..ICONS {
                let r = l.icon(i);
                assert!(
                    r.x >= 0 && r.y > l.search_box().y && r.x + r.w <= w as i32,
                    "{w}x{h} {i}"
                );
                assert!(r.y + r.h <= h as i32, "{w}x{h} {i}");
                let c = (r.x as u32 + 1, r.y as u32 + 1);
                assert_eq!(l.icon_at(c.0, c.1), Some(i));
            }
            assert!(l.recents_rows() >= 2);
        }
        let (small, big) = (Layout::new(360, 640), Layout::new(720, 1280));
        assert!((big.icon(5).x - 2 * small.icon(5).x).abs() <= 1);
        assert_eq!(big.mark().0, 18);
        assert_eq!(big.status_bar().h, 36);
    }
}
