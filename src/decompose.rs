//! CS-MCA decomposition of a detail layer into cartoon and texture (DESIGN.md section 1.2):
//! alternating CBPDN against the cartoon and texture dictionaries with a decreasing lambda.

use crate::cbpdn::{CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::engine::Engine;
use crate::error::Result;
use crate::plane::{CoefMaps, Plane};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct McaParams {
    /// Outer iterations (6 in the method).
    pub outer_iters: usize,
    /// CBPDN iteration cap per inner solve (30).
    pub inner_iters: usize,
    pub rel_tol: f64,
    /// Texture penalty (1.0); the cartoon penalty is `50 lam_t + 1`.
    pub texture_rho: f64,
    pub relax: f64,
}

impl Default for McaParams {
    fn default() -> Self {
        McaParams {
            outer_iters: 6,
            inner_iters: 30,
            rel_tol: 1e-3,
            texture_rho: 1.0,
            relax: 1.8,
        }
    }
}

impl McaParams {
    /// `lam_t = max(0.6 - 0.1 t, 0.005)` for outer iteration `t = 1..`.
    pub fn lambda(t: usize) -> f64 {
        (0.6 - 0.1 * t as f64).max(0.005)
    }

    /// Options of one inner CBPDN solve.
    pub fn cbpdn(&self, lambda: f64, rho: f64) -> CbpdnOptions {
        let mut o = CbpdnOptions::new(lambda);
        o.rho = Some(rho);
        o.max_iter = self.inner_iters;
        o.rel_tol = self.rel_tol;
        o.abs_tol = 0.0;
        o.relax = self.relax;
        o
    }
}

/// Cartoon and texture parts of one detail layer with their coefficient maps.
pub struct Components {
    pub cartoon_coef: CoefMaps,
    pub texture_coef: CoefMaps,
    pub cartoon: Plane,
    pub texture: Plane,
    /// Statistics of the last cartoon and texture solves.
    pub cartoon_stats: SolveStats,
    pub texture_stats: SolveStats,
}

/// CS-MCA of one detail layer; `on_solve` is called after each of its `2 * outer_iters` solves.
pub fn decompose(
    engine: &mut dyn Engine,
    detail: &Plane,
    dc: &Dictionary,
    dt: &Dictionary,
    p: &McaParams,
    on_solve: &mut dyn FnMut(),
) -> Result<Components> {
    let mut texture = Plane::zeros(detail.h, detail.w);
    let mut last = None;
    for t in 1..=p.outer_iters {
        let lam = McaParams::lambda(t);
        // x_c += (s_h - x_t - x_c)  ==  x_c = s_h - x_t
        let target = detail.sub(&texture);
        let c = engine.sparse_code(dc, &target, &p.cbpdn(lam, 50.0 * lam + 1.0))?;
        c.stats.check_finite("cartoon sparse coding")?;
        on_solve();
        let cartoon = engine.synthesize(dc, &c.coef)?;
        let target = detail.sub(&cartoon);
        let tx = engine.sparse_code(dt, &target, &p.cbpdn(lam, p.texture_rho))?;
        tx.stats.check_finite("texture sparse coding")?;
        on_solve();
        texture = engine.synthesize(dt, &tx.coef)?;
        last = Some((c, cartoon, tx));
    }
    let (c, cartoon, tx) = last.ok_or_else(|| {
        crate::error::Error::Param("CS-MCA needs at least one outer iteration".into())
    })?;
    Ok(Components {
        cartoon_coef: c.coef,
        texture_coef: tx.coef,
        cartoon,
        texture,
        cartoon_stats: c.stats,
        texture_stats: tx.stats,
    })
}
