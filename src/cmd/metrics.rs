//! `csfuse metrics A B F`: objective fusion metrics of F against its sources.

use csfuse::metrics::{score, Gray};
use csfuse::Result;
use std::path::PathBuf;

/// Score a fused image F against its sources A and B with the usual objective fusion metrics.
///
/// All are "higher is better"; EN, SD and SF describe F alone. The images are 8-bit; colour ones
/// are scored on grey levels (MATLAB's rgb2gray for uint8). Each metric follows its published
/// definition and is tested against the original MATLAB code's values:
///   EN      entropy of F, bits (VIFB)
///   SD      standard deviation of F (VIFB)
///   SF      spatial frequency of F (VIFB)
///   MI      I(A;F) + I(B;F), bits, 256 levels (Qu et al. 2002)
///   Q_MI    normalised mutual information (Hossny et al. 2008)
///   SSIM_sum  SSIM(A,F) + SSIM(B,F), Gaussian 11x11, sigma 1.5 (Wang et al. 2004)
///   Q_ABF   gradient-based Q^AB/F as published (Xydeas & Petrovic 2000)
///   Q_ABF_vifb  the same as VIFB's code computes it (differs where a source's gradient equals F's)
///   Q_S     Piella's structural quality index (Piella & Heijmans 2003)
///   Q_Y     Yang's SSIM-based metric (Yang et al. 2008); half-and-half weights where both sources
///           are flat, where the original code returns NaN
///   Q_CB    Chen and Blum's perceptual metric (Chen & Blum 2009), as Liu's toolbox computes it
///   Q_P     phase-congruency metric (Zhao et al. 2007) on Kovesi's phase congruency, 4 scales,
///           6 orientations; n/a when neither source has a feature (PC over 0.1)
///   VIFF    visual information fidelity for fusion (Han et al. 2013); images of 81x81 or more
#[derive(clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "Examples:\n  csfuse metrics ct.png mr.png fused.png\n  \
csfuse metrics ct.png mr.png fused.png --json"
)]
pub struct Args {
    /// Source A.
    pub a: PathBuf,
    /// Source B.
    pub b: PathBuf,
    /// The fused image.
    pub f: PathBuf,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (a, b, f) = (
        Gray::read(&args.a)?,
        Gray::read(&args.b)?,
        Gray::read(&args.f)?,
    );
    let s = score(&a, &b, &f)?;
    if args.json {
        println!("{}", serde_json::to_string(&s).expect("JSON of plain data"));
        return Ok(());
    }
    for (k, v) in s.rows() {
        match v {
            Some(v) => println!("{k:<11} {v:.6}"),
            None if k == "Q_P" => println!("{k:<11} n/a (neither source has a feature)"),
            None => println!("{k:<11} n/a (the images are too small for it)"),
        }
    }
    Ok(())
}
