//! Colour sources (PET/SPECT rendered with a colour map): ITU-R BT.601 full-range YCbCr, as JPEG
//! uses it, on [0, 1] values. Only the luminance Y is fused; the chroma comes back from the colour
//! source(s), so a functional image keeps its colours.

use crate::plane::Plane;

/// BT.601 luma weights.
const KR: f64 = 0.299;
const KB: f64 = 0.114;
const KG: f64 = 1.0 - KR - KB;

/// `(Y, Cb, Cr)` of one RGB pixel in [0, 1]; Cb and Cr are centred on 0.5.
pub fn rgb_to_ycbcr(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let y = KR * r + KG * g + KB * b;
    let cb = 0.5 + (b - y) / (2.0 * (1.0 - KB));
    let cr = 0.5 + (r - y) / (2.0 * (1.0 - KR));
    (y, cb, cr)
}

/// The exact inverse of [`rgb_to_ycbcr`].
pub fn ycbcr_to_rgb(y: f64, cb: f64, cr: f64) -> (f64, f64, f64) {
    let r = y + 2.0 * (1.0 - KR) * (cr - 0.5);
    let b = y + 2.0 * (1.0 - KB) * (cb - 0.5);
    let g = (y - KR * r - KB * b) / KG;
    (r, g, b)
}

/// Three planes made pixel by pixel from three planes of one size by `f`.
fn per_pixel([p, q, r]: [&Plane; 3], f: impl Fn(f64, f64, f64) -> (f64, f64, f64)) -> [Plane; 3] {
    let (h, w) = (p.h, p.w);
    let mut out = [Plane::zeros(h, w), Plane::zeros(h, w), Plane::zeros(h, w)];
    for i in 0..h * w {
        let (x, y, z) = f(p.data[i], q.data[i], r.data[i]);
        out[0].data[i] = x;
        out[1].data[i] = y;
        out[2].data[i] = z;
    }
    out
}

/// Y, Cb and Cr planes of an RGB image given as three [0, 1] planes.
pub fn split(rgb: &[Plane; 3]) -> [Plane; 3] {
    per_pixel([&rgb[0], &rgb[1], &rgb[2]], rgb_to_ycbcr)
}

/// RGB planes from Y, Cb and Cr planes.
pub fn merge(y: &Plane, cb: &Plane, cr: &Plane) -> [Plane; 3] {
    per_pixel([y, cb, cr], ycbcr_to_rgb)
}

/// RGB planes from Y, Cb and Cr planes, each pixel by [`ycbcr_to_rgb_in_gamut`].
pub fn merge_in_gamut(y: &Plane, cb: &Plane, cr: &Plane) -> [Plane; 3] {
    per_pixel([y, cb, cr], ycbcr_to_rgb_in_gamut)
}

/// RGB of one pixel with Y clamped to [0, 1] and the chroma scaled down just enough that no
/// channel leaves [0, 1]. Scaling Cb - 0.5 and Cr - 0.5 together keeps the hue and, since the
/// chroma offsets carry no luma, the pixel's Y exactly: a bright fused pixel under a saturated
/// colour loses saturation instead of brightness, as clipping the channels would make it.
pub fn ycbcr_to_rgb_in_gamut(y: f64, cb: f64, cr: f64) -> (f64, f64, f64) {
    let l = y.clamp(0.0, 1.0);
    let (r, g, b) = ycbcr_to_rgb(l, cb, cr);
    let off = [r - l, g - l, b - l];
    // The largest share of the offsets that keeps every channel in [0, 1].
    let share = off
        .iter()
        .map(|&o| match o {
            o if o > 0.0 => (1.0 - l) / o,
            o if o < 0.0 => -l / o,
            _ => 1.0,
        })
        .fold(1.0, f64::min);
    let [r, g, b] = off.map(|o| (l + share * o).clamp(0.0, 1.0));
    (r, g, b)
}

/// Chroma of two colour sources, blended per pixel by saturation: each source's weight is its
/// distance from neutral grey, `|Cb - 0.5| + |Cr - 0.5|`, so the more colourful source dominates
/// and a grey pixel in one source takes the other's colour; equal weights where both are grey.
pub fn blend_chroma(a: (&Plane, &Plane), b: (&Plane, &Plane)) -> (Plane, Plane) {
    let (h, w) = (a.0.h, a.0.w);
    let mut cb = Plane::zeros(h, w);
    let mut cr = Plane::zeros(h, w);
    for i in 0..h * w {
        let wa = (a.0.data[i] - 0.5).abs() + (a.1.data[i] - 0.5).abs();
        let wb = (b.0.data[i] - 0.5).abs() + (b.1.data[i] - 0.5).abs();
        let (wa, wb) = if wa + wb > 0.0 { (wa, wb) } else { (1.0, 1.0) };
        cb.data[i] = (wa * a.0.data[i] + wb * b.0.data[i]) / (wa + wb);
        cr.data[i] = (wa * a.1.data[i] + wb * b.1.data[i]) / (wa + wb);
    }
    (cb, cr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_values() {
        for (r, g, b) in [
            (1.0, 0.0, 0.0),
            (0.2, 0.7, 0.4),
            (0.0, 0.0, 0.0),
            (1.0, 1.0, 1.0),
        ] {
            let (y, cb, cr) = rgb_to_ycbcr(r, g, b);
            let (r2, g2, b2) = ycbcr_to_rgb(y, cb, cr);
            assert!((r - r2).abs() + (g - g2).abs() + (b - b2).abs() < 1e-12);
        }
        // Pure red: Y = 0.299 and Cr at its maximum 1.0; grey has neutral chroma.
        let (y, _, cr) = rgb_to_ycbcr(1.0, 0.0, 0.0);
        assert!((y - 0.299).abs() < 1e-12 && (cr - 1.0).abs() < 1e-12);
        let (_, cb, cr) = rgb_to_ycbcr(0.4, 0.4, 0.4);
        assert!((cb - 0.5).abs() < 1e-12 && (cr - 0.5).abs() < 1e-12);
    }

    #[test]
    fn in_gamut_merge_keeps_luma_and_hue() {
        let p = |v: f64| Plane::from_vec(1, 1, vec![v]);
        // A saturated red over a bright luminance: plain merging leaves the gamut.
        let (_, cb, cr) = rgb_to_ycbcr(1.0, 0.1, 0.0);
        let (r, _, _) = ycbcr_to_rgb(0.8, cb, cr);
        assert!(r > 1.0);
        let [r, g, b] = merge_in_gamut(&p(0.8), &p(cb), &p(cr)).map(|c| c.data[0]);
        assert!([r, g, b].iter().all(|v| (0.0..=1.0).contains(v)));
        let (y2, cb2, cr2) = rgb_to_ycbcr(r, g, b);
        assert!((y2 - 0.8).abs() < 1e-12, "{y2}");
        // Same hue: the chroma offsets keep their ratio, only shrunk.
        let ratio = (cb2 - 0.5) / (cr2 - 0.5);
        assert!((ratio - (cb - 0.5) / (cr - 0.5)).abs() < 1e-9);
        assert!((cr2 - 0.5).abs() < (cr - 0.5).abs());
        // In gamut already: unchanged; out-of-range luminance is clamped.
        let (_, cb, cr) = rgb_to_ycbcr(0.3, 0.5, 0.4);
        let [r, g, b] = merge_in_gamut(&p(0.45), &p(cb), &p(cr)).map(|c| c.data[0]);
        let (r0, g0, b0) = ycbcr_to_rgb(0.45, cb, cr);
        assert!((r - r0).abs() + (g - g0).abs() + (b - b0).abs() < 1e-12);
        let [r, g, b] = merge_in_gamut(&p(1.2), &p(cb), &p(cr)).map(|c| c.data[0]);
        assert_eq!([r, g, b], [1.0, 1.0, 1.0]);
    }

    #[test]
    fn blend_takes_the_colourful_source() {
        let p = |v: f64| Plane::from_vec(1, 1, vec![v]);
        let (cb, cr) = blend_chroma((&p(0.5), &p(0.5)), (&p(0.2), &p(0.9)));
        assert!((cb.data[0] - 0.2).abs() < 1e-12 && (cr.data[0] - 0.9).abs() < 1e-12);
        let (cb, _) = blend_chroma((&p(0.5), &p(0.5)), (&p(0.5), &p(0.5)));
        assert_eq!(cb.data[0], 0.5);
        let (cb, _) = blend_chroma((&p(0.3), &p(0.5)), (&p(0.6), &p(0.5)));
        assert!((cb.data[0] - (0.2 * 0.3 + 0.1 * 0.6) / 0.3).abs() < 1e-12);
    }
}
