//! How the two base layers of a pair become one in the `pyramid` mode.
//!
//! The published method averages the base layers, which halves the contrast of any large
//! structure only one source shows: bright CT bone or a hot PET region comes out grey. Taking the
//! larger structure outright (a pixel-wise maximum) keeps it but flattens the detail layers laid on
//! top of it, which costs edge and contrast transfer. The rule here goes part of the way: a
//! Laplacian pyramid of the two bases keeps the larger-magnitude structure at every scale and moves
//! the coarsest level towards the brighter source; the fused base is a fixed share of that pyramid
//! fusion plus the rest of the average. The share and the pull of the coarsest level are
//! [`BaseRule`]'s two numbers: `fuse`'s `--base-share` and `--base-top`, whose defaults were chosen
//! by cross-validation over the development pairs (docs/method.md#choosing-the-base-rule).

use crate::error::{Error, Result};
use crate::pipeline::baselines::pyramid_fusion;
use crate::plane::Plane;
use serde::Serialize;

/// Pyramid levels (fewer for small images, so that the coarsest level keeps 8 pixels a side).
const LEVELS: usize = 5;

/// The pyramid mode's base rule: `share * pyramid + (1 - share) * average`, the pyramid's coarsest
/// level moved `top` of the way from the average towards the brighter source.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BaseRule {
    /// The pyramid fusion's share of the fused base (0: the average, as the published method; 1:
    /// the pyramid alone).
    pub share: f64,
    /// How far the coarsest pyramid level moves from the average towards the brighter source (0:
    /// the average; 1: the brighter one).
    pub top: f64,
}

impl Default for BaseRule {
    fn default() -> Self {
        BaseRule {
            share: 0.2,
            top: 0.6,
        }
    }
}

impl BaseRule {
    /// Both numbers must lie in [0, 1].
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("share (--base-share, base_share)", self.share),
            ("top (--base-top, base_top)", self.top),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Param(format!(
                    "the base rule's {name} must be from 0 to 1, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// The fused base layer of one pair (`a` and `b` of one size).
pub(crate) fn fuse_bases(a: &Plane, b: &Plane, rule: &BaseRule) -> Plane {
    let top = |x: f64, y: f64| {
        let avg = 0.5 * (x + y);
        avg + rule.top * (x.max(y) - avg)
    };
    let pyr = pyramid_fusion(a, b, LEVELS, top);
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .zip(&pyr.data)
        .map(|((x, y), p)| (1.0 - rule.share) * 0.5 * (x + y) + rule.share * p)
        .collect();
    Plane::from_vec(a.h, a.w, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_base_twice_is_itself_at_odd_and_even_sizes() {
        for (h, w) in [(64, 64), (97, 131), (9, 12)] {
            let a = Plane::from_fn(h, w, |y, x| ((x * 5 + y * 11) % 13) as f64 / 13.0);
            let f = fuse_bases(&a, &a, &BaseRule::default());
            let worst = f.data.iter().zip(&a.data).map(|(p, q)| (p - q).abs());
            assert!(worst.fold(0.0, f64::max) < 1e-12, "{h}x{w}");
        }
    }

    #[test]
    fn a_bright_region_of_one_source_stays_brighter_than_the_average() {
        // A: a bright disc (bone) on a dark field; B: a flat mid grey.
        let (h, w) = (96, 80);
        let a = Plane::from_fn(h, w, |y, x| {
            let d = ((y as f64 - 48.0).powi(2) + (x as f64 - 40.0).powi(2)).sqrt();
            if d < 20.0 {
                0.9
            } else {
                0.1
            }
        });
        let b = Plane::from_fn(h, w, |_, _| 0.4);
        let f = fuse_bases(&a, &b, &BaseRule::default());
        let at = |p: &Plane, y: usize, x: usize| p.data[y * w + x];
        let avg = 0.5 * (0.9 + 0.4);
        // Inside the disc the fused base is above the average and below the brighter source.
        assert!(at(&f, 48, 40) > avg + 0.02, "{}", at(&f, 48, 40));
        assert!(at(&f, 48, 40) < 0.9);
        // The disc's edge keeps more contrast than in the average.
        let edge = |p: &Plane| at(p, 48, 57) - at(p, 48, 63);
        assert!(edge(&f) > 0.5 * (0.9 - 0.1) + 0.01, "{}", edge(&f));
        // Two flat bases fuse to a flat base between them.
        let g = fuse_bases(&Plane::from_fn(h, w, |_, _| 0.2), &b, &BaseRule::default());
        assert!(g.data.iter().all(|v| (0.3..0.4).contains(v)));
        assert!(g.data.iter().all(|v| (v - g.data[0]).abs() < 1e-12));
    }
}
