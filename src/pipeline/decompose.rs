//! CS-MCA decomposition of detail layers into cartoon and texture (docs/method.md, "The pipeline", step 2):
//! alternating CBPDN against the cartoon and texture dictionaries with a decreasing lambda, on a
//! whole batch of layers at once.

use crate::cpu::cbpdn::{CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::pipeline::ops::Ops;
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

/// The buffers of a CS-MCA decomposition of a batch of detail layers: the cartoon and texture
/// codes and layers, and the target of each inner solve.
pub struct Parts<E: Ops> {
    pub cartoon_code: E::Code,
    pub texture_code: E::Code,
    pub cartoon: E::Planes,
    pub texture: E::Planes,
    target: E::Planes,
}

impl<E: Ops> Parts<E> {
    /// Zeroed parts for `n` detail layers of `h x w`.
    pub fn new(
        e: &mut E,
        dc: &Dictionary,
        dt: &Dictionary,
        n: usize,
        (h, w): (usize, usize),
    ) -> Result<Self> {
        Ok(Parts {
            cartoon_code: e.code("cartoon", dc, n, h, w)?,
            texture_code: e.code("texture", dt, n, h, w)?,
            cartoon: e.planes("cartoon layers", n, h, w)?,
            texture: e.planes("texture layers", n, h, w)?,
            target: e.planes("sparse-coding targets", n, h, w)?,
        })
    }
}

/// Statistics of the last cartoon and texture solves, per item.
pub struct LastSolves {
    pub cartoon: Vec<SolveStats>,
    pub texture: Vec<SolveStats>,
}

/// CS-MCA of every detail layer in `detail` into `parts` (zeroed); `on_solve` is called after each
/// of its `2 * outer_iters` batched solves.
pub fn decompose<E: Ops>(
    e: &mut E,
    detail: &E::Planes,
    parts: &mut Parts<E>,
    p: &McaParams,
    on_solve: &mut dyn FnMut(),
) -> Result<LastSolves> {
    if p.outer_iters == 0 {
        return Err(Error::Param(
            "CS-MCA needs at least one outer iteration".into(),
        ));
    }
    let mut last = LastSolves {
        cartoon: Vec::new(),
        texture: Vec::new(),
    };
    for t in 1..=p.outer_iters {
        let lam = McaParams::lambda(t);
        // x_c += (s_h - x_t - x_c)  ==  x_c = s_h - x_t
        e.sub(detail, &parts.texture, &mut parts.target)?;
        last.cartoon = e.solve(
            &mut parts.cartoon_code,
            &parts.target,
            &p.cbpdn(lam, 50.0 * lam + 1.0),
        )?;
        check_all(&last.cartoon, "cartoon sparse coding")?;
        on_solve();
        e.synthesize(&parts.cartoon_code, &mut parts.cartoon)?;
        e.sub(detail, &parts.cartoon, &mut parts.target)?;
        last.texture = e.solve(
            &mut parts.texture_code,
            &parts.target,
            &p.cbpdn(lam, p.texture_rho),
        )?;
        check_all(&last.texture, "texture sparse coding")?;
        on_solve();
        e.synthesize(&parts.texture_code, &mut parts.texture)?;
    }
    Ok(last)
}

fn check_all(stats: &[SolveStats], what: &str) -> Result<()> {
    for (i, st) in stats.iter().enumerate() {
        let name = if stats.len() > 1 {
            format!("{what} (item {i} of the batch)")
        } else {
            what.to_string()
        };
        st.check_finite(&name)?;
    }
    Ok(())
}
