//! `--montage`: the sources, the fused image and both decision maps side by side, each under a
//! label, so a user sees at a glance what came from where. Decision maps are white where source A
//! was taken and black where B was.

use crate::error::Result;
use crate::formats::image::{encode_image, Raster, SampleFormat};
use crate::plane::{DecisionMap, Plane};
use std::path::Path;

/// One panel: one (gray) or three (RGB) planes of [0, 1] values, and its label.
pub struct Panel {
    pub label: String,
    pub channels: Vec<Plane>,
}

impl Panel {
    pub fn gray(label: &str, p: Plane) -> Self {
        Panel {
            label: label.into(),
            channels: vec![p],
        }
    }

    /// A decision map: white where A was taken.
    pub fn decision(label: &str, d: &DecisionMap) -> Self {
        let data = d
            .from_a
            .iter()
            .map(|a| if *a { 1.0 } else { 0.0 })
            .collect();
        Panel::gray(label, Plane::from_vec(d.h, d.w, data))
    }

    /// The panel alone, unlabelled, as an 8-bit image in the format `path` names.
    pub fn encode(&self, path: &Path) -> Result<Vec<u8>> {
        let (h, w) = (self.channels[0].h, self.channels[0].w);
        let channels = self
            .channels
            .iter()
            .map(|p| p.data.iter().map(|v| v.clamp(0.0, 1.0) * 255.0).collect())
            .collect();
        let raster = Raster {
            h,
            w,
            channels,
            format: SampleFormat::U8,
        };
        encode_image(path, &raster)
    }
}

const GAP: usize = 4;

/// Lay the panels out left to right with a label strip above each, and write an 8-bit RGB image.
pub fn write(path: &Path, panels: &[Panel]) -> Result<()> {
    crate::formats::output::write_atomic(path, &encode(path, panels)?)
}

/// The montage encoded as the format `path` names.
pub fn encode(path: &Path, panels: &[Panel]) -> Result<Vec<u8>> {
    let (h, w) = (panels[0].channels[0].h, panels[0].channels[0].w);
    let scale = if w >= 192 { 2 } else { 1 };
    let strip = (GLYPH_H + 4) * scale;
    let (oh, ow) = (strip + h, panels.len() * (w + GAP) - GAP);
    let mut rgb = vec![vec![0.0; oh * ow]; 3];
    for (k, p) in panels.iter().enumerate() {
        let x0 = k * (w + GAP);
        for (c, out) in rgb.iter_mut().enumerate() {
            let src = &p.channels[c.min(p.channels.len() - 1)];
            for y in 0..h {
                for x in 0..w {
                    out[(strip + y) * ow + x0 + x] = src.data[y * w + x].clamp(0.0, 1.0) * 255.0;
                }
            }
        }
        draw_text(
            &mut rgb,
            ow,
            x0 + 2 * scale,
            2 * scale,
            &p.label,
            scale,
            x0 + w,
        );
    }
    encode_image(
        path,
        &Raster {
            h: oh,
            w: ow,
            channels: rgb,
            format: SampleFormat::U8,
        },
    )
}

/// Draw `text` in white from (x, y) onto planes of width `ow`, glyphs `s` times their size, clipped
/// at column `x_end`.
pub(crate) fn draw_text(
    rgb: &mut [Vec<f64>],
    ow: usize,
    x: usize,
    y: usize,
    text: &str,
    s: usize,
    x_end: usize,
) {
    let mut cx = x;
    for ch in text.chars() {
        let rows = glyph(ch.to_ascii_uppercase());
        for (gy, row) in rows.iter().enumerate() {
            for gx in 0..GLYPH_W {
                if row >> (GLYPH_W - 1 - gx) & 1 == 1 {
                    for dy in 0..s {
                        for dx in 0..s {
                            let px = cx + gx * s + dx;
                            if px < x_end {
                                let i = (y + gy * s + dy) * ow + px;
                                rgb.iter_mut().for_each(|c| c[i] = 255.0);
                            }
                        }
                    }
                }
            }
        }
        cx += (GLYPH_W + 1) * s;
    }
}

pub(crate) const GLYPH_W: usize = 5;
pub(crate) const GLYPH_H: usize = 7;

/// Width in pixels of `text` drawn at scale `s`.
pub(crate) fn text_width(text: &str, s: usize) -> usize {
    text.chars().count() * (GLYPH_W + 1) * s
}

/// A 5x7 bitmap font for labels: capitals, digits and a little punctuation (unknown characters
/// draw as blanks).
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        _ => [0; GLYPH_H],
    }
}
