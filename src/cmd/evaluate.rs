//! `csfuse evaluate LIST.csv --methods ... --out-dir DIR`: every pair fused by every method,
//! scored, and summed up in tables, montages and charts; resumable like `batch`.

use super::fuse::FuseOpts;
use csfuse::evaluate::{
    cost_table, group_of, markdown_table, plot, scores_csv, summary_csv, Cost, Method, Scored,
    DEFAULT_METRICS,
};
use csfuse::formats::image::{decode_image, encode_image, read_image, Raster, SampleFormat};
use csfuse::formats::montage::{self, Panel};
use csfuse::formats::output::{check_outputs, remove_stale_temps, OutputSet};
use csfuse::jobs::batch::{input_records, parameters, read_list, sha256_file, sidecar_path};
use csfuse::jobs::batch::{Item, OnDisk};
use csfuse::jobs::image::{fuse_rasters_variants, fuse_rasters_with_decisions, ImagePair};
use csfuse::jobs::report::{json_bytes, ImageOutcome, Outcome, Report};
use csfuse::jobs::session::Session;
use csfuse::jobs::{kind, path_text, JobOptions, Kind};
use csfuse::metrics::{Gray, Sources};
use csfuse::pages::report::{report_html, PairImages, Provenance};
use csfuse::pipeline::fuse::{Mode, Rules};
use csfuse::plane::{DecisionMap, Plane};
use csfuse::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Compare fusion methods on a list of image pairs: fuse every pair with every method, score each
/// result with `csfuse metrics`, and write the comparison.
///
/// LIST is a `batch` list (A,B[,OUTPUT]; images, 8-bit, as the metrics are defined on 8-bit grey
/// levels). Methods: the CS-MCA modes (`pyramid`, `paper`; `default` is the default mode), the
/// pyramid mode with other rule settings (`pyramid-share-0.5-vote-9-texture-choose`: `share`,
/// `top`, `bright`, `vote` and `texture` are `--base-share`, `--base-top`, `--base-bright`,
/// `--vote-radius` and `--texture-rule`), and three rules that need no dictionaries: `average`,
/// `max` (pixel-wise) and `laplacian` (a 4-level Laplacian pyramid, larger-magnitude detail,
/// averaged base). The pyramid-mode methods of a run share one decomposition of each pair, so
/// comparing rule settings costs little more than one fusion (each reports as its cost the time
/// it would take alone: the shared decomposition and its own rules). Colour sources follow
/// `fuse`'s colour rule for every method: the luminance is fused and the chroma put back (scaled
/// into gamut by the `pyramid` mode, clipped per channel by the others).
///
/// Written into --out-dir:
///   METHOD/OUTPUT          each fused image (8-bit PNG), with OUTPUT.json: inputs' SHA-256,
///                          parameters and scores. A rerun skips what these vouch for, so an
///                          interrupted evaluation resumes and a second run fuses nothing.
///   scores.csv             every pair's scores with every method (all metrics), with each
///                          fusion's ADMM iterations and seconds
///   summary.csv            mean and sd per method and metric (all pairs)
///   summary.md             mean ± sd per method and metric, the best in bold; all pairs, then
///                          one table per group (the OUTPUT name less its last `_` part, e.g.
///                          ct_mr_p01.png is in ct_mr) when there are several; then the cost
///                          per pair of each method (ADMM iterations, seconds)
///   montages/OUTPUT        A | B | each method's result, labelled
///   plots/METRIC.png       a box plot of each method's scores (one dot per pair)
///   report.html            a page for a browser: the tables (sortable), each pair's pictures
///                          at full resolution with a swipe or blink comparison of any two, the
///                          box plots, and the command and parameters; it shows these files:
///   sources/PAIR.a.png     the sources as 8-bit PNG (B likewise)
///   decisions/METHOD/PAIR.cartoon.png, .texture.png
///                          each CS-MCA method's decision maps, white where A was taken
///
/// A pair that fails is reported and the others go on (exit status 1 at the end).
#[derive(clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "Examples:\n  csfuse evaluate pairs.csv --out-dir eval\n  \
csfuse evaluate pairs.csv --methods paper,max --metrics Q_ABF,Q_CB,VIFF --out-dir eval --backend cpu\n  \
csfuse evaluate pairs.csv --methods pyramid,pyramid-share-1,pyramid-vote-9 --out-dir rules"
)]
pub struct Args {
    /// The pairs, in `csfuse batch`'s list format.
    pub list: PathBuf,
    /// Methods to compare, comma-separated [default: every CS-MCA mode, average, max, laplacian];
    /// pyramid variants as `pyramid-KEY-VALUE...`, e.g. `pyramid-share-1-vote-9`.
    #[arg(long, value_delimiter = ',', value_parser = Method::parse)]
    pub methods: Option<Vec<Method>>,
    /// Metrics of the Markdown table and the charts, comma-separated [default:
    /// Q_ABF,Q_CB,Q_P,Q_Y,VIFF,Q_MI,SSIM_sum]. The CSV files hold them all.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
    /// Folder for the results, tables, montages and charts.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub opts: FuseOpts,
    /// Replace files in --out-dir that no csfuse sidecar vouches for.
    #[arg(short, long)]
    pub force: bool,
}

/// Metric names and values (`None` where a metric does not apply).
type Scores = Vec<(String, Option<f64>)>;

/// One method's result of one pair: fused now (with the raster), or vouched for on disk.
struct Done {
    method: Method,
    scores: Scores,
    cost: Option<Cost>,
    fused_now: Option<Raster>,
    output: PathBuf,
    /// A CS-MCA method's decision maps (cartoon, texture).
    decisions: Option<[PathBuf; 2]>,
}

/// A pair's name less its extension: `ct_mr_p01.png` -> `ct_mr_p01`.
fn pair_stem(pair: &str) -> String {
    path_text(&Path::new(pair).with_extension(""))
}

/// Where a pair's PNG copies of its sources go.
fn source_pngs(out_dir: &Path, pair: &str) -> [PathBuf; 2] {
    let stem = pair_stem(pair);
    ["a", "b"].map(|s| out_dir.join("sources").join(format!("{stem}.{s}.png")))
}

/// Where a CS-MCA method's decision maps of a pair go.
fn decision_pngs(out_dir: &Path, method: Method, pair: &str) -> Option<[PathBuf; 2]> {
    let stem = pair_stem(pair);
    method.is_cs_mca().then(|| {
        ["cartoon", "texture"].map(|k| {
            out_dir
                .join("decisions")
                .join(method.name())
                .join(format!("{stem}.{k}.png"))
        })
    })
}

pub fn run(args: Args) -> Result<()> {
    let methods = args.methods.clone().unwrap_or_else(Method::all);
    let names: Vec<String> = methods.iter().map(|m| m.name()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let all_metrics: Vec<&str> = csfuse::metrics::METRIC_NAMES.to_vec();
    let metrics: Vec<String> = match &args.metrics {
        Some(m) => m.iter().map(|s| s.trim().to_string()).collect(),
        None => DEFAULT_METRICS.iter().map(|s| s.to_string()).collect(),
    };
    if let Some(bad) = metrics.iter().find(|m| !all_metrics.contains(&m.as_str())) {
        return Err(Error::Param(format!(
            "--metrics: `{bad}` is not a metric: use {}",
            all_metrics.join(", ")
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(m) = methods.iter().find(|m| !seen.insert(m.name())) {
        return Err(Error::Param(format!(
            "--methods names `{}` twice",
            m.name()
        )));
    }
    let mut opts = args.opts.job_options(None, false)?;
    opts.out_depth = Some(SampleFormat::U8);
    let items = read_list(&args.list, &args.out_dir)?;
    for it in &items {
        if kind(&it.a) != Kind::Image {
            return Err(Error::Param(format!(
                "{}:{}: evaluate compares images; {} is a volume",
                args.list.display(),
                it.line,
                it.a.display()
            )));
        }
    }
    let mut session = args.opts.session()?;
    let t0 = Instant::now();
    let (mut rows, mut failed) = (Vec::new(), Vec::new());
    let mut pictures = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let pair = pair_name(it, &args.out_dir);
        match evaluate_pair(it, &pair, &methods, &args, &opts, &mut session) {
            Ok(done) => {
                let fused = done.iter().filter(|d| d.fused_now.is_some()).count();
                log::info!(
                    "[{}/{}] {pair}: {} fused, {} up to date",
                    i + 1,
                    items.len(),
                    fused,
                    done.len() - fused
                );
                pictures.push(pair_images(&args.out_dir, &pair, &done));
                rows.extend(done.into_iter().map(|d| Scored {
                    pair: pair.clone(),
                    group: group_of(&pair),
                    method: d.method.name(),
                    scores: d.scores,
                    cost: d.cost,
                }));
            }
            Err(e) => {
                log::error!("[{}/{}] line {}: {e}", i + 1, items.len(), it.line);
                failed.push((it.line, e.to_string()));
            }
        }
    }
    let made_by = Provenance {
        command: &command_line(),
        parameters: methods
            .iter()
            .map(|&m| Ok((m.name(), method_options(m, &args, &opts)?.1)))
            .collect::<Result<serde_json::Map<String, Value>>>()?
            .into(),
        failures: &failed,
    };
    write_summary(
        &args.out_dir,
        &rows,
        &names,
        &metrics,
        (&pictures, &made_by),
    )?;
    log::info!(
        "evaluated {} pairs x {} methods in {:.1} s; {} failed; tables in {}",
        items.len() - failed.len(),
        methods.len(),
        t0.elapsed().as_secs_f64(),
        failed.len(),
        args.out_dir.join("summary.md").display()
    );
    match failed.first() {
        None => Ok(()),
        Some((line, e)) => Err(Error::BadImage {
            path: args.list.clone(),
            msg: format!(
                "{} of {} pairs failed (the first, line {line}: {e}); the tables hold the others",
                failed.len(),
                items.len()
            ),
        }),
    }
}

/// A method's options, and the parameters its results' sidecars record (what decides whether a
/// result is up to date).
fn method_options(m: Method, args: &Args, opts: &JobOptions) -> Result<(JobOptions, Value)> {
    let mut o = opts.clone();
    match m {
        Method::CsMca(mode) => o.params = args.opts.params(mode)?,
        Method::Pyramid(rules) => {
            o.params = args.opts.params(Mode::Pyramid)?;
            o.params.set_rules(&rules)?;
        }
        Method::Baseline(_) => {}
    }
    let params = json!({
        "method": m.name(),
        "fusion": parameters(&o, args.opts.precision, false),
    });
    Ok((o, params))
}

/// The command line that ran, quoted where a shell would need it.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A pair's pictures, relative to --out-dir (the report's folder).
fn pair_images(out_dir: &Path, pair: &str, done: &[Done]) -> PairImages {
    let rel = |p: &Path| path_text(p.strip_prefix(out_dir).unwrap_or(p));
    let [a, b] = source_pngs(out_dir, pair);
    PairImages {
        pair: pair.to_string(),
        a: rel(&a),
        b: rel(&b),
        results: done
            .iter()
            .map(|d| (d.method.name(), rel(&d.output)))
            .collect(),
        decisions: done
            .iter()
            .filter_map(|d| {
                let [c, t] = d.decisions.as_ref()?;
                Some((d.method.name(), [rel(c), rel(t)]))
            })
            .collect(),
    }
}

/// The pair's name: its output path relative to --out-dir, as a PNG.
fn pair_name(it: &Item, out_dir: &Path) -> String {
    let rel = it.out.strip_prefix(out_dir).unwrap_or(&it.out);
    path_text(&rel.with_extension("png"))
}

/// A method's result still to make.
struct Pending {
    method: Method,
    opts: JobOptions,
    params: Value,
    output: PathBuf,
    decisions: Option<[PathBuf; 2]>,
}

/// A fused result before it is written: the raster, its ADMM iterations, its decision maps.
type Fused = (Raster, usize, Option<[DecisionMap; 2]>);

/// Fuse and score one pair with every method (or take what the sidecars vouch for), and write its
/// montage when anything was fused or it is missing. Pyramid-mode methods (`pyramid` and its rule
/// variants) that are not up to date share one decomposition.
fn evaluate_pair(
    it: &Item,
    pair: &str,
    methods: &[Method],
    args: &Args,
    opts: &JobOptions,
    s: &mut Session,
) -> Result<Vec<Done>> {
    let inputs = input_records(it)?;
    let mut done: Vec<Option<Done>> = Vec::with_capacity(methods.len());
    let mut pending = Vec::new();
    for &m in methods {
        let output = args.out_dir.join(m.name()).join(pair);
        let (o, params) = method_options(m, args, opts)?;
        let decisions = decision_pngs(&args.out_dir, m, pair);
        let on_disk = OnDisk::read(&output, Default::default());
        // A CS-MCA result counts as done with its decision maps, which only a fusion makes.
        let maps_there = decisions
            .as_ref()
            .is_none_or(|d| d.iter().all(|p| p.is_file()));
        if on_disk.up_to_date(&inputs, &params) && maps_there {
            if let Some((scores, cost)) = recorded_scores(&output) {
                done.push(Some(Done {
                    method: m,
                    scores,
                    cost,
                    fused_now: None,
                    output,
                    decisions,
                }));
                continue;
            }
        }
        if let (Some(f), false) = (on_disk.foreign().first(), args.force) {
            return Err(Error::BadOutput {
                path: f.clone(),
                msg: "file exists and no csfuse sidecar vouches for it; pass --force to replace it"
                    .into(),
            });
        }
        done.push(None);
        pending.push(Pending {
            method: m,
            opts: o,
            params,
            output,
            decisions,
        });
    }
    let mut sources: Option<(Raster, Raster, ImagePair)> = None;
    if !pending.is_empty() {
        let (ra, rb) = (read_image(&it.a)?, read_image(&it.b)?);
        let pair = ImagePair::from_rasters(ra.clone(), rb.clone(), (&it.a, &it.b), opts)?;
        sources = Some((ra, rb, pair));
    }
    let mut made = Vec::with_capacity(pending.len());
    if let Some((ra, rb, ip)) = &sources {
        let mut fused = fuse_pending(&pending, ip, s)?.into_iter();
        // What the metrics take from the sources alone is computed once for all the methods.
        let (ga, gb) = (Gray::of(ra, &it.a)?, Gray::of(rb, &it.b)?);
        let scorer = Sources::new(&ga, &gb)?;
        for p in pending {
            let ((raster, admm_iterations, maps), seconds) = fused.next().expect("one per method");
            let cost = Cost {
                admm_iterations,
                seconds,
            };
            made.push(score_and_write(
                p,
                (&scorer, it),
                &inputs,
                raster,
                maps,
                cost,
            )?);
        }
    }
    let mut made = made.into_iter();
    let done: Vec<Done> = done
        .into_iter()
        .map(|d| d.unwrap_or_else(|| made.next().expect("one per pending method")))
        .collect();
    let montage = args.out_dir.join("montages").join(pair);
    let pngs = source_pngs(&args.out_dir, pair);
    // Written on every run, fused or resumed, so that it shows this run's methods: a resumed run
    // may compare fewer methods than the run that fused them.
    write_montage((&montage, &pngs), it, sources.map(|s| s.2), &done, opts)?;
    Ok(done)
}

/// Fuse the pair with each pending method, in their order, with the seconds each took. The
/// pyramid-mode methods, when there are several, are fused from one decomposition, and each is
/// given the time it would take alone: that fusion's time less the other variants' rule and
/// synthesis stages.
fn fuse_pending(pending: &[Pending], ip: &ImagePair, s: &mut Session) -> Result<Vec<(Fused, f64)>> {
    let mut out: Vec<Option<(Fused, f64)>> = pending.iter().map(|_| None).collect();
    let group: Vec<usize> = (0..pending.len())
        .filter(|&i| pending[i].method.is_cs_mca() && pending[i].opts.params.mode == Mode::Pyramid)
        .collect();
    if group.len() > 1 {
        let rules: Vec<Rules> = group
            .iter()
            .map(|&i| pending[i].opts.params.rules())
            .collect();
        let t = Instant::now();
        let results = fuse_rasters_variants(s, ip, &pending[group[0]].opts, &rules)?;
        let seconds = t.elapsed().as_secs_f64();
        let own: Vec<f64> = results.iter().map(|(_, r, _)| rule_seconds(r)).collect();
        let shared = seconds - own.iter().sum::<f64>();
        for ((&i, (raster, report, maps)), own) in group.iter().zip(results).zip(own) {
            out[i] = Some(((raster, iterations(&report), Some(maps)), shared + own));
        }
    }
    for (p, slot) in pending.iter().zip(&mut out) {
        if slot.is_some() {
            continue;
        }
        let t = Instant::now();
        let fused = match p.method {
            Method::CsMca(_) | Method::Pyramid(_) => {
                let (raster, report, maps) = fuse_rasters_with_decisions(s, ip, &p.opts)?;
                (raster, iterations(&report), Some(maps))
            }
            Method::Baseline(b) => (ip.baseline(b)?, 0, None),
        };
        *slot = Some((fused, t.elapsed().as_secs_f64()));
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every method fused"))
        .collect())
}

/// The outcome of an image fusion's report.
fn image_outcome(report: &Report) -> &ImageOutcome {
    match &report.result {
        Some(Outcome::Image(r)) => r,
        _ => unreachable!("an image fusion reports an image outcome"),
    }
}

/// The seconds an image fusion's report gives its own rules and synthesis (after the decomposition).
fn rule_seconds(report: &Report) -> f64 {
    let t = &image_outcome(report).timings_ms;
    (t.fuse_rule + t.synthesis) / 1e3
}

/// The ADMM iterations of an image fusion's report.
fn iterations(report: &Report) -> usize {
    image_outcome(report).admm_iterations.total
}

/// Score a fused result as written (the file's rounded samples) and write it with its sidecar and
/// decision maps.
fn score_and_write(
    p: Pending,
    (scorer, it): (&Sources, &Item),
    inputs: &Value,
    fused: Raster,
    maps: Option<[DecisionMap; 2]>,
    cost: Cost,
) -> Result<Done> {
    let bytes = encode_image(&p.output, &fused)?;
    let fused = decode_image(&p.output, &bytes)?;
    let scores: Vec<(String, Option<f64>)> = scorer
        .score(&Gray::of(&fused, &p.output)?)?
        .rows()
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let mut extra = Vec::new();
    if let (Some(paths), Some(maps)) = (&p.decisions, &maps) {
        for (path, d) in paths.iter().zip(maps) {
            extra.push((path.clone(), Panel::decision("", d).encode(path)?));
        }
    }
    write_result(
        &p.output,
        &bytes,
        (inputs, &p.params),
        (&scores, cost),
        &[&it.a, &it.b],
        &extra,
    )?;
    Ok(Done {
        method: p.method,
        scores,
        cost: Some(cost),
        fused_now: Some(fused),
        output: p.output,
        decisions: p.decisions,
    })
}

/// The scores and the cost a result's sidecar records.
fn recorded_scores(output: &Path) -> Option<(Scores, Option<Cost>)> {
    let side: Value = serde_json::from_slice(&std::fs::read(sidecar_path(output)).ok()?).ok()?;
    let scores = side.get("scores")?.as_object()?;
    let cost = match (
        side.get("admm_iterations").and_then(Value::as_u64),
        side.get("fusion_seconds").and_then(Value::as_f64),
    ) {
        (Some(i), Some(s)) => Some(Cost {
            admm_iterations: i as usize,
            seconds: s,
        }),
        _ => None,
    };
    let scores = csfuse::metrics::METRIC_NAMES
        .iter()
        .map(|k| (k.to_string(), scores.get(*k).and_then(Value::as_f64)))
        .collect();
    Some((scores, cost))
}

/// The fused image and its sidecar (inputs, parameters, scores, cost), committed together.
fn write_result(
    output: &Path,
    fused: &[u8],
    (inputs, params): (&Value, &Value),
    (scores, cost): (&[(String, Option<f64>)], Cost),
    sources: &[&Path],
    extra: &[(PathBuf, Vec<u8>)],
) -> Result<()> {
    let side = sidecar_path(output);
    let mut all: Vec<&Path> = vec![output, &side];
    all.extend(extra.iter().map(|(p, _)| p.as_path()));
    for p in &all {
        ready(p)?;
    }
    // Files csfuse wrote before are replaced (the caller checked that a sidecar vouches for them).
    check_outputs(&all, sources, true)?;
    let mut set = OutputSet::default();
    set.stage_bytes(output, fused)?;
    for (p, bytes) in extra {
        set.stage_bytes(p, bytes)?;
    }
    let staged = set.staged_file(output).unwrap_or(output).to_path_buf();
    let scores: serde_json::Map<String, Value> = scores
        .iter()
        .map(|(k, v)| (k.clone(), v.map_or(Value::Null, Value::from)))
        .collect();
    let sidecar = json!({
        "csfuse_version": env!("CARGO_PKG_VERSION"),
        "inputs": inputs,
        "output": {"path": path_text(output), "sha256": sha256_file(&staged)?},
        "parameters": params,
        "scores": scores,
        "admm_iterations": cost.admm_iterations,
        "fusion_seconds": cost.seconds,
    });
    set.stage_bytes(&side, &json_bytes(&sidecar))?;
    set.commit()
}

/// Make `path`'s folder and remove the temporary files a killed run left for it.
fn ready(path: &Path) -> Result<()> {
    remove_stale_temps(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// A | B | each method's result, labelled; and the sources alone as PNG (`pngs`).
fn write_montage(
    (path, pngs): (&Path, &[PathBuf; 2]),
    it: &Item,
    pair: Option<ImagePair>,
    done: &[Done],
    opts: &JobOptions,
) -> Result<()> {
    let pair = match pair {
        Some(p) => p,
        None => {
            ImagePair::from_rasters(read_image(&it.a)?, read_image(&it.b)?, (&it.a, &it.b), opts)?
        }
    };
    let mut panels: Vec<Panel> = pair.source_panels().into();
    let mut set = OutputSet::default();
    for (p, panel) in pngs.iter().zip(&panels) {
        ready(p)?;
        set.stage_bytes(p, &panel.encode(p)?)?;
    }
    for d in done {
        let r = match &d.fused_now {
            Some(r) => r.clone(),
            None => read_image(&d.output)?,
        };
        let scale = r.format.max_value();
        let channels = r
            .channels
            .iter()
            .map(|c| Plane::from_vec(r.h, r.w, c.iter().map(|v| v / scale).collect()))
            .collect();
        panels.push(Panel {
            label: d.method.name().to_uppercase(),
            channels,
        });
    }
    ready(path)?;
    set.stage_bytes(path, &montage::encode(path, &panels)?)?;
    set.commit()
}

/// scores.csv, summary.csv, summary.md and the charts.
fn write_summary(
    dir: &Path,
    rows: &[Scored],
    methods: &[&str],
    metrics: &[String],
    (pictures, made_by): (&[PairImages], &Provenance),
) -> Result<()> {
    let metrics: Vec<&str> = metrics.iter().map(|s| s.as_str()).collect();
    let all: Vec<&str> = csfuse::metrics::METRIC_NAMES.to_vec();
    let mut md = markdown_table(rows, None, methods, &metrics);
    let mut groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
    groups.sort();
    groups.dedup();
    if groups.len() > 1 {
        for g in &groups {
            md.push('\n');
            md.push_str(&markdown_table(rows, Some(g), methods, &metrics));
        }
    }
    md.push('\n');
    md.push_str(&cost_table(rows, methods));
    std::fs::create_dir_all(dir.join("plots")).map_err(|e| Error::io(dir, e))?;
    let mut set = OutputSet::default();
    set.stage_bytes(&dir.join("scores.csv"), scores_csv(rows).as_bytes())?;
    set.stage_bytes(
        &dir.join("summary.csv"),
        summary_csv(rows, methods, &all).as_bytes(),
    )?;
    set.stage_bytes(&dir.join("summary.md"), md.as_bytes())?;
    for k in &metrics {
        let series: Vec<(&str, Vec<f64>)> = methods
            .iter()
            .map(|m| {
                let v = rows
                    .iter()
                    .filter(|r| r.method == *m)
                    .filter_map(|r| r.scores.iter().find(|(n, _)| n == k).and_then(|(_, v)| *v))
                    .collect();
                (*m, v)
            })
            .collect();
        let path = dir.join("plots").join(format!("{k}.png"));
        set.stage_bytes(&path, &encode_image(&path, &plot::box_plot(k, &series)?)?)?;
    }
    let plots: Vec<(String, String)> = metrics
        .iter()
        .map(|k| (k.to_string(), format!("plots/{k}.png")))
        .collect();
    let page = report_html(rows, methods, &metrics, pictures, &plots, made_by);
    set.stage_bytes(&dir.join("report.html"), page.as_bytes())?;
    set.commit()
}
