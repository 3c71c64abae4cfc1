//! One chart per metric: a box plot of each method's per-pair scores (median, quartiles, whiskers
//! at 1.5 IQR), drawn by plotters on an in-memory bitmap. Plotters here has no font backend (none
//! that needs no system library), so the title, tick values and method names are drawn with the
//! montage's bitmap font.

use crate::error::{Error, Result};
use crate::formats::image::{Raster, SampleFormat};
use crate::formats::montage::{draw_text, text_width, GLYPH_H};
use plotters::prelude::*;

/// Per-method box colours (Okabe–Ito, distinguishable with colour-vision deficiencies).
const COLOURS: [RGBColor; 8] = [
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(240, 228, 66),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(200, 200, 200),
];

const TOP: u32 = 36;
const LEFT: u32 = 76;
const BOTTOM: u32 = 40;
const RIGHT: u32 = 16;
const TICKS: usize = 5;

fn chart_err(e: impl std::fmt::Display) -> Error {
    Error::Param(format!("cannot draw the chart: {e}"))
}

/// Round numbers for `TICKS` ticks over [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / TICKS as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Decimals that tell the ticks apart.
fn decimals(ticks: &[f64]) -> usize {
    match ticks {
        [a, b, ..] => ((-(b - a).abs().log10()).ceil().max(0.0) as usize).min(6),
        _ => 3,
    }
}

/// The box plot of `metric` over `series` (method name, its per-pair values) as an RGB raster.
pub fn box_plot(metric: &str, series: &[(&str, Vec<f64>)]) -> Result<Raster> {
    let n = series.len().max(1);
    let (w, h) = (LEFT + RIGHT + 124 * n as u32, 360u32);
    let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let (mut lo, mut hi) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    if !(lo.is_finite() && hi.is_finite()) {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let tick_px: Vec<(f64, i32)>;
    let centres: Vec<i32>;
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&BLACK).map_err(chart_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin_top(TOP)
            .margin_left(LEFT)
            .margin_bottom(BOTTOM)
            .margin_right(RIGHT)
            .build_cartesian_2d((0..n as u32).into_segmented(), lo as f32..hi as f32)
            .map_err(chart_err)?;
        let ts = ticks(lo, hi);
        chart
            .draw_series(ts.iter().map(|t| {
                PathElement::new(
                    vec![
                        (SegmentValue::Exact(0), *t as f32),
                        (SegmentValue::Exact(n as u32), *t as f32),
                    ],
                    RGBColor(70, 70, 70),
                )
            }))
            .map_err(chart_err)?;
        for (i, (_, values)) in series.iter().enumerate() {
            if values.is_empty() {
                continue;
            }
            let q = Quartiles::new(values);
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(std::iter::once(
                    Boxplot::new_vertical(SegmentValue::CenterOf(i as u32), &q)
                        .width(40)
                        .whisker_width(0.5)
                        .style(colour.stroke_width(2)),
                ))
                .map_err(chart_err)?;
            // Each pair as a dot beside its box, so that few pairs are not hidden in a box.
            chart
                .draw_series(values.iter().map(|v| {
                    Circle::new(
                        (SegmentValue::CenterOf(i as u32), *v as f32),
                        2,
                        colour.filled(),
                    )
                }))
                .map_err(chart_err)?;
        }
        let axis = [
            (SegmentValue::Exact(0), hi as f32),
            (SegmentValue::Exact(0), lo as f32),
            (SegmentValue::Exact(n as u32), lo as f32),
        ];
        chart
            .draw_series(std::iter::once(PathElement::new(axis.to_vec(), WHITE)))
            .map_err(chart_err)?;
        tick_px = ts
            .iter()
            .map(|t| {
                (
                    *t,
                    chart.backend_coord(&(SegmentValue::Exact(0), *t as f32)).1,
                )
            })
            .collect();
        centres = (0..n as u32)
            .map(|i| {
                chart
                    .backend_coord(&(SegmentValue::CenterOf(i), lo as f32))
                    .0
            })
            .collect();
        root.present().map_err(chart_err)?;
    }
    let (w, h) = (w as usize, h as usize);
    let mut planes: Vec<Vec<f64>> = (0..3)
        .map(|c| (0..w * h).map(|i| buf[3 * i + c] as f64).collect())
        .collect();
    let s = 2;
    let title = format!("{metric}  (higher is better)");
    draw_text(&mut planes, w, LEFT as usize, 10, &title, s, w);
    let d = decimals(&tick_px.iter().map(|t| t.0).collect::<Vec<_>>());
    for (t, y) in &tick_px {
        let label = format!("{t:.d$}");
        let x = (LEFT as usize).saturating_sub(text_width(&label, 1) + 6);
        let y = (*y as usize).saturating_sub(GLYPH_H / 2);
        draw_text(&mut planes, w, x, y, &label, 1, LEFT as usize);
    }
    for ((name, _), cx) in series.iter().zip(&centres) {
        let x = (*cx as usize).saturating_sub(text_width(name, s) / 2);
        draw_text(&mut planes, w, x, h - BOTTOM as usize + 12, name, s, w);
    }
    Ok(Raster {
        h,
        w,
        channels: planes,
        format: SampleFormat::U8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        // A range of 0.32 in five: steps of 0.1 (the first round step of at least 0.064).
        let t = ticks(0.51, 0.83);
        let want = [0.6, 0.7, 0.8];
        assert_eq!(t.len(), 3);
        assert!(
            t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{t:?}"
        );
        assert_eq!(decimals(&t), 1);
        let t = ticks(0.3, 0.45);
        assert!(
            t.iter().all(|v| (0.3..=0.45).contains(v)) && t.len() >= 3,
            "{t:?}"
        );
        assert_eq!(decimals(&t), 2);
    }

    #[test]
    fn a_box_plot_draws_a_box_per_method() {
        let r = box_plot(
            "Q_ABF",
            &[("paper", vec![0.5, 0.6, 0.7]), ("max", vec![0.8, 0.9])],
        )
        .unwrap();
        assert_eq!((r.w, r.h), (LEFT as usize + RIGHT as usize + 248, 360));
        // Each method's colour appears (its box), and the white labels.
        let has = |c: RGBColor| {
            (0..r.w * r.h).any(|i| {
                (r.channels[0][i], r.channels[1][i], r.channels[2][i])
                    == (c.0 as f64, c.1 as f64, c.2 as f64)
            })
        };
        assert!(has(COLOURS[0]) && has(COLOURS[1]) && has(WHITE));
        assert!(!has(COLOURS[2]), "no third method");
    }
}
