//! CS-MCA decomposition of detail layers into cartoon and texture (docs/method.md, "The pipeline", step 2):
//! alternating CBPDN against the cartoon and texture dictionaries with a decreasing lambda, on a
//! whole batch of layers at once.

use crate::cpu::cbpdn::{CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::pipeline::ops::{Ops, Start};
use serde::Serialize;

/// One outer iteration: the lambda of its cartoon and texture solves, their ADMM iteration cap,
/// and where they start.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stage {
    pub lambda: f64,
    pub max_iter: usize,
    /// Start each solve where the previous stage's left its item (coefficients, rho, the dual
    /// scaled to this lambda) instead of from zero.
    pub warm: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct McaParams {
    /// The outer iterations, in order.
    pub stages: Vec<Stage>,
    pub rel_tol: f64,
    /// Texture penalty (1.0); the cartoon penalty is `50 lambda + 1`.
    pub texture_rho: f64,
    pub relax: f64,
}

impl McaParams {
    /// The published schedule: 6 outer iterations with `lam_t = max(0.6 - 0.1 t, 0.005)`, each
    /// solve from zero and capped at 30 iterations.
    pub fn published() -> Self {
        McaParams {
            stages: [0.5, 0.4, 0.3, 0.2, 0.1, 0.005]
                .into_iter()
                .map(|lambda| Stage {
                    lambda,
                    max_iter: 30,
                    warm: false,
                })
                .collect(),
            rel_tol: 1e-3,
            texture_rho: 1.0,
            relax: 1.8,
        }
    }

    /// The short schedule of the default mode (docs/method.md#schedule): the split settled at
    /// lambda 0.2, continued warm to 0.05, and the final codes solved from zero at 0.005.
    pub fn short() -> Self {
        let stage = |lambda, max_iter, warm| Stage {
            lambda,
            max_iter,
            warm,
        };
        McaParams {
            stages: vec![
                stage(0.2, 20, false),
                stage(0.05, 20, true),
                stage(0.005, 10, false),
            ],
            ..Self::published()
        }
    }

    pub fn outer_iters(&self) -> usize {
        self.stages.len()
    }

    /// The most ADMM iterations one source's decomposition may take (both parts).
    pub fn iteration_cap(&self) -> usize {
        2 * self.stages.iter().map(|s| s.max_iter).sum::<usize>()
    }

    /// Options of one inner CBPDN solve.
    pub fn cbpdn(&self, stage: &Stage, rho: f64) -> CbpdnOptions {
        let mut o = CbpdnOptions::new(stage.lambda);
        o.rho = Some(rho);
        o.max_iter = stage.max_iter;
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

/// ADMM iterations of one source's solves, outer iteration by outer iteration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SolveIterations {
    pub cartoon: Vec<usize>,
    pub texture: Vec<usize>,
}

impl SolveIterations {
    pub fn total(&self) -> usize {
        self.cartoon.iter().chain(&self.texture).sum()
    }
}

/// Statistics of the last cartoon and texture solves, and the iterations of every solve, per
/// item.
pub struct LastSolves {
    pub cartoon: Vec<SolveStats>,
    pub texture: Vec<SolveStats>,
    pub iterations: Vec<SolveIterations>,
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
    if p.stages.is_empty() {
        return Err(Error::Param(
            "CS-MCA needs at least one outer iteration".into(),
        ));
    }
    let mut last = LastSolves {
        cartoon: Vec::new(),
        texture: Vec::new(),
        iterations: Vec::new(),
    };
    for (t, stage) in p.stages.iter().enumerate() {
        let start = match stage.warm && t > 0 {
            true => Start::Warm,
            false => Start::Zero,
        };
        // x_c += (s_h - x_t - x_c)  ==  x_c = s_h - x_t
        e.sub(detail, &parts.texture, &mut parts.target)?;
        let rho = 50.0 * stage.lambda + 1.0;
        last.cartoon = e.solve(
            &mut parts.cartoon_code,
            &parts.target,
            &p.cbpdn(stage, rho),
            start,
        )?;
        check_all(&last.cartoon, "cartoon sparse coding")?;
        on_solve();
        e.synthesize(&parts.cartoon_code, &mut parts.cartoon)?;
        e.sub(detail, &parts.cartoon, &mut parts.target)?;
        last.texture = e.solve(
            &mut parts.texture_code,
            &parts.target,
            &p.cbpdn(stage, p.texture_rho),
            start,
        )?;
        check_all(&last.texture, "texture sparse coding")?;
        on_solve();
        e.synthesize(&parts.texture_code, &mut parts.texture)?;
        last.iterations
            .resize_with(last.cartoon.len(), Default::default);
        for ((it, c), x) in last
            .iterations
            .iter_mut()
            .zip(&last.cartoon)
            .zip(&last.texture)
        {
            it.cartoon.push(c.iterations);
            it.texture.push(x.iterations);
        }
        log::debug!(
            "outer iteration {} (lambda {}): ADMM iterations per item {:?}",
            t + 1,
            stage.lambda,
            last.cartoon
                .iter()
                .zip(&last.texture)
                .map(|(c, x)| (c.iterations, x.iterations))
                .collect::<Vec<_>>()
        );
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
