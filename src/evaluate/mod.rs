//! `csfuse evaluate`: fusion methods compared on a list of pairs. This module holds what does not
//! touch files: the methods, and the tables made of the per-pair scores (mean ± sd per method and
//! metric, best in bold); [`plot`] draws one chart per metric. The command (`cmd/evaluate.rs`)
//! fuses, scores, resumes and writes.

pub mod plot;

use crate::pipeline::baselines::Baseline;
use crate::pipeline::fuse::{FuseParams, Mode, RuleOptions, TextureRule};

/// A fusion method of the comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// CS-MCA in one of its modes.
    CsMca(Mode),
    /// The pyramid mode with some of its rule settings given, e.g. `pyramid-share-0.5-vote-9`
    /// (`share`, `top`, `bright`, `vote`, `texture`: `--base-share`, `--base-top`,
    /// `--base-bright`, `--vote-radius`, `--texture-rule`).
    Pyramid(RuleOptions),
    /// A rule that needs no dictionaries.
    Baseline(Baseline),
}

const BASELINES: [Baseline; 3] = [Baseline::Average, Baseline::Max, Baseline::Laplacian];

/// The keys of a pyramid variant's name, in the order the name lists them.
const RULE_KEYS: [&str; 5] = ["share", "top", "bright", "vote", "texture"];

impl Method {
    /// Every method, in the order a table lists them: the CS-MCA modes, then the baselines.
    pub fn all() -> Vec<Method> {
        Mode::ALL
            .into_iter()
            .map(Method::CsMca)
            .chain(BASELINES.into_iter().map(Method::Baseline))
            .collect()
    }

    pub fn name(self) -> String {
        match self {
            Method::CsMca(m) => m.name().into(),
            Method::Pyramid(r) => {
                let values = [
                    r.base_share.map(|v| v.to_string()),
                    r.base_top.map(|v| v.to_string()),
                    r.base_bright.map(|v| v.to_string()),
                    r.vote_radius.map(|v| v.to_string()),
                    r.texture_rule.map(|t| t.name().to_string()),
                ];
                let mut name = Mode::Pyramid.name().to_string();
                for (k, v) in RULE_KEYS.iter().zip(values) {
                    if let Some(v) = v {
                        name.push_str(&format!("-{k}-{v}"));
                    }
                }
                name
            }
            Method::Baseline(Baseline::Average) => "average".into(),
            Method::Baseline(Baseline::Max) => "max".into(),
            Method::Baseline(Baseline::Laplacian) => "laplacian".into(),
        }
    }

    /// Whether the method fuses by CS-MCA (and so has decision maps).
    pub fn is_cs_mca(self) -> bool {
        !matches!(self, Method::Baseline(_))
    }

    /// A method by its name; `default` is csfuse's default mode.
    pub fn parse(s: &str) -> std::result::Result<Method, String> {
        let t = s.trim();
        if t == "default" {
            return Ok(Method::CsMca(Mode::default()));
        }
        if let Some(rest) = t.strip_prefix("pyramid-") {
            return parse_rules(rest)
                .map(Method::Pyramid)
                .map_err(|e| format!("`{s}`: {e}"));
        }
        Method::all()
            .into_iter()
            .find(|m| m.name() == t)
            .ok_or_else(|| {
                let names: Vec<String> = Method::all().iter().map(|m| m.name()).collect();
                format!(
                    "`{s}` is not a method: use default, {}, or the pyramid mode with rule \
                     settings, e.g. pyramid-share-0.5-vote-9",
                    names.join(", ")
                )
            })
    }
}

/// `share-0.5-vote-9` (keys `share`, `top`, `bright`, `vote`, `texture`, each at most once) as rule
/// options, checked as `fuse --base-share ...` checks them.
fn parse_rules(text: &str) -> std::result::Result<RuleOptions, String> {
    let words: Vec<&str> = text.split('-').collect();
    if !words.len().is_multiple_of(2) {
        return Err("a pyramid variant is `pyramid` then KEY-VALUE pairs, e.g. \
                    pyramid-share-0.5-vote-9"
            .into());
    }
    let mut r = RuleOptions::default();
    for kv in words.chunks(2) {
        let (k, v) = (kv[0], kv[1]);
        let number = || {
            v.parse::<f64>()
                .map_err(|_| format!("`{k}` takes a number, got `{v}`"))
        };
        let slot_taken = match k {
            "share" => r.base_share.replace(number()?).is_some(),
            "top" => r.base_top.replace(number()?).is_some(),
            "bright" => r.base_bright.replace(number()?).is_some(),
            "vote" => r
                .vote_radius
                .replace(
                    v.parse::<usize>()
                        .map_err(|_| format!("`vote` takes a whole number of pixels, got `{v}`"))?,
                )
                .is_some(),
            "texture" => r
                .texture_rule
                .replace(
                    TextureRule::parse(v)
                        .ok_or_else(|| format!("`texture` is `choose` or `sum`, got `{v}`"))?,
                )
                .is_some(),
            _ => {
                return Err(format!(
                    "`{k}` is not a rule setting: use {}",
                    RULE_KEYS.join(", ")
                ))
            }
        };
        if slot_taken {
            return Err(format!("`{k}` is given twice"));
        }
    }
    FuseParams::new(Mode::Pyramid)
        .set_rules(&r)
        .map_err(|e| e.to_string())?;
    Ok(r)
}

/// The metrics a table shows by default: the structure and information metrics the comparison is
/// judged on (every metric is in the per-pair CSV).
pub const DEFAULT_METRICS: [&str; 7] = ["Q_ABF", "Q_CB", "Q_P", "Q_Y", "VIFF", "Q_MI", "SSIM_sum"];

/// One method's scores on one pair: metric name and value (`None` where it does not apply).
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    pub pair: String,
    pub group: String,
    pub method: String,
    pub scores: Vec<(String, Option<f64>)>,
    /// What the fusion cost, when its sidecar recorded it.
    pub cost: Option<Cost>,
}

/// What one fusion cost: its ADMM iterations (0 for the rules without sparse coding) and its
/// wall time in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    pub admm_iterations: usize,
    pub seconds: f64,
}

impl Scored {
    fn get(&self, metric: &str) -> Option<f64> {
        self.scores
            .iter()
            .find(|(k, _)| k == metric)
            .and_then(|(_, v)| *v)
    }
}

/// The group of a pair from its output name: the name without its extension and its last
/// `_`-separated part (`ct_mr_p01.png` is in `ct_mr`, `mr_spect_m11.png` in `mr_spect`).
pub fn group_of(output: &str) -> String {
    let stem = output.rsplit('/').next().unwrap_or(output);
    let stem = stem.split('.').next().unwrap_or(stem);
    match stem.rsplit_once('_') {
        Some((g, _)) if !g.is_empty() => g.to_string(),
        _ => stem.to_string(),
    }
}

/// Mean and sample standard deviation (0 for one value) of the values present; `None` if none.
pub fn mean_sd(values: &[Option<f64>]) -> Option<(f64, f64, usize)> {
    let v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd, v.len()))
}

/// Summary of `rows` (those whose group is in `groups`, or all): per method and metric, (mean,
/// sd, n), in the order of `methods` and `metrics`.
pub fn summarize(
    rows: &[Scored],
    groups: Option<&str>,
    methods: &[&str],
    metrics: &[&str],
) -> Vec<Vec<Option<(f64, f64, usize)>>> {
    methods
        .iter()
        .map(|m| {
            metrics
                .iter()
                .map(|k| {
                    let values: Vec<Option<f64>> = rows
                        .iter()
                        .filter(|r| r.method == *m && groups.is_none_or(|g| r.group == g))
                        .map(|r| r.get(k))
                        .collect();
                    mean_sd(&values)
                })
                .collect()
        })
        .collect()
}

/// The summary as CSV: `method,pairs,<metric>_mean,<metric>_sd,...` (6 decimals).
pub fn summary_csv(rows: &[Scored], methods: &[&str], metrics: &[&str]) -> String {
    let table = summarize(rows, None, methods, metrics);
    let mut out = String::from("method,pairs");
    for k in metrics {
        out.push_str(&format!(",{k}_mean,{k}_sd"));
    }
    out.push('\n');
    for (m, cells) in methods.iter().zip(&table) {
        let pairs = rows.iter().filter(|r| r.method == *m).count();
        out.push_str(&format!("{m},{pairs}"));
        for c in cells {
            match c {
                Some((mean, sd, _)) => out.push_str(&format!(",{mean:.6},{sd:.6}")),
                None => out.push_str(",,"),
            }
        }
        out.push('\n');
    }
    out
}

/// Every pair's scores as CSV: `pair,group,method,<every metric>,admm_iterations,seconds`.
pub fn scores_csv(rows: &[Scored]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = String::from("pair,group,method");
    for (k, _) in &first.scores {
        out.push_str(&format!(",{k}"));
    }
    out.push_str(",admm_iterations,seconds\n");
    for r in rows {
        out.push_str(&format!("{},{},{}", csv_field(&r.pair), r.group, r.method));
        for (_, v) in &r.scores {
            match v {
                Some(v) => out.push_str(&format!(",{v:.6}")),
                None => out.push(','),
            }
        }
        match r.cost {
            Some(c) => out.push_str(&format!(",{},{:.3}\n", c.admm_iterations, c.seconds)),
            None => out.push_str(",,\n"),
        }
    }
    out
}

/// A Markdown table of what each method's fusions cost per pair: ADMM iterations and seconds
/// (mean ± sd), and the seconds of all pairs together.
pub fn cost_table(rows: &[Scored], methods: &[&str]) -> String {
    let mut out = String::from(
        "Cost per pair (wall time of each fusion on the machine that ran it)\n\n\
         | method | ADMM iterations | seconds | seconds, all pairs |\n|---|---|---|---|\n",
    );
    for m in methods {
        let costs: Vec<Cost> = rows
            .iter()
            .filter(|r| r.method == *m)
            .filter_map(|r| r.cost)
            .collect();
        let iters: Vec<Option<f64>> = costs
            .iter()
            .map(|c| Some(c.admm_iterations as f64))
            .collect();
        let secs: Vec<Option<f64>> = costs.iter().map(|c| Some(c.seconds)).collect();
        match (mean_sd(&iters), mean_sd(&secs)) {
            (Some((im, isd, _)), Some((sm, ssd, n))) => out.push_str(&format!(
                "| {m} | {im:.0} ± {isd:.0} | {sm:.2} ± {ssd:.2} | {:.1} |\n",
                sm * n as f64
            )),
            _ => out.push_str(&format!("| {m} | n/a | n/a | n/a |\n")),
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A Markdown table of mean ± sd (4 decimals) per method and metric, the best mean of each metric
/// in bold (every metric is higher-is-better); `title` heads it.
pub fn markdown_table(
    rows: &[Scored],
    group: Option<&str>,
    methods: &[&str],
    metrics: &[&str],
) -> String {
    let table = summarize(rows, group, methods, metrics);
    let pairs = rows
        .iter()
        .filter(|r| group.is_none_or(|g| r.group == g))
        .map(|r| r.pair.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut out = format!(
        "{} ({pairs} pair{})\n\n| method |",
        group.map_or("All pairs".to_string(), |g| format!("Group `{g}`")),
        if pairs == 1 { "" } else { "s" }
    );
    for k in metrics {
        out.push_str(&format!(" {k} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(metrics.len()));
    out.push('\n');
    // Compared at the printed precision, so that ties are bold together.
    let shown = |v: f64| (v * 1e4).round() as i64;
    let best: Vec<Option<i64>> = (0..metrics.len())
        .map(|j| {
            table
                .iter()
                .filter_map(|cells| cells[j].map(|c| shown(c.0)))
                .max()
        })
        .collect();
    for (m, cells) in methods.iter().zip(&table) {
        out.push_str(&format!("| {m} |"));
        for (j, c) in cells.iter().enumerate() {
            match c {
                Some((mean, sd, _)) => {
                    let text = format!("{mean:.4} ± {sd:.4}");
                    if Some(shown(*mean)) == best[j] {
                        out.push_str(&format!(" **{text}** |"));
                    } else {
                        out.push_str(&format!(" {text} |"));
                    }
                }
                None => out.push_str(" n/a |"),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pair: &str, method: &str, q: f64, p: Option<f64>) -> Scored {
        Scored {
            pair: pair.into(),
            group: group_of(pair),
            method: method.into(),
            scores: vec![("Q_ABF".into(), Some(q)), ("Q_P".into(), p)],
            cost: (method == "paper").then_some(Cost {
                admm_iterations: 700,
                seconds: q * 10.0,
            }),
        }
    }

    #[test]
    fn methods_parse_by_name() {
        for m in Method::all() {
            assert_eq!(Method::parse(&m.name()), Ok(m));
        }
        assert_eq!(Method::parse("default"), Ok(Method::CsMca(Mode::default())));
        assert!(Method::parse("best").unwrap_err().contains("paper"));
        // Pyramid variants: any of the five keys once, named in one order.
        let m = Method::parse("pyramid-vote-9-share-0.50").unwrap();
        assert_eq!(m.name(), "pyramid-share-0.5-vote-9");
        assert_eq!(Method::parse(&m.name()), Ok(m));
        let all = Method::parse("pyramid-share-1-top-0.6-bright-0-vote-5").unwrap();
        assert_eq!(all.name(), "pyramid-share-1-top-0.6-bright-0-vote-5");
        let t = Method::parse("pyramid-texture-choose-vote-9").unwrap();
        assert_eq!(t.name(), "pyramid-vote-9-texture-choose");
        assert_eq!(Method::parse(&t.name()), Ok(t));
        for (bad, why) in [
            ("pyramid-", "KEY-VALUE"),
            ("pyramid-share", "KEY-VALUE"),
            ("pyramid-size-3", "not a rule setting"),
            ("pyramid-share-x", "takes a number"),
            ("pyramid-vote-2.5", "whole number"),
            ("pyramid-vote-5-vote-9", "twice"),
            ("pyramid-share-1.5", "from 0 to 1"),
            ("pyramid-vote-65", "at most 64"),
            ("pyramid-texture-max", "`choose` or `sum`"),
        ] {
            let e = Method::parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn groups_come_from_output_names() {
        assert_eq!(group_of("ct_mr_p01.png"), "ct_mr");
        assert_eq!(group_of("sub/mr_spect_m11.png"), "mr_spect");
        assert_eq!(group_of("single.png"), "single");
    }

    #[test]
    fn tables_give_mean_sd_and_bold_the_best() {
        let rows = vec![
            row("ct_mr_1.png", "paper", 0.5, Some(0.2)),
            row("ct_mr_2.png", "paper", 0.7, None),
            row("ct_mr_1.png", "max", 0.6, Some(0.4)),
            row("ct_mr_2.png", "max", 0.6, Some(0.6)),
        ];
        let s = summarize(&rows, None, &["paper", "max"], &["Q_ABF", "Q_P"]);
        let (mean, sd, n) = s[0][0].unwrap();
        assert!((mean - 0.6).abs() < 1e-12 && (sd - 0.02f64.sqrt()).abs() < 1e-12 && n == 2);
        // Q_P of paper has one value: mean of what is present, n = 1.
        assert_eq!(s[0][1], Some((0.2, 0.0, 1)));
        let md = markdown_table(&rows, None, &["paper", "max"], &["Q_ABF", "Q_P"]);
        assert!(md.starts_with("All pairs (2 pairs)"), "{md}");
        // Q_ABF ties at 0.6000: both bold; Q_P: max.
        assert!(
            md.contains("| paper | **0.6000 ± 0.1414** | 0.2000 ± 0.0000 |"),
            "{md}"
        );
        assert!(
            md.contains("| max | **0.6000 ± 0.0000** | **0.5000 ± 0.1414** |"),
            "{md}"
        );
        let csv = summary_csv(&rows, &["paper", "max"], &["Q_ABF", "Q_P"]);
        assert_eq!(
            csv.lines().next(),
            Some("method,pairs,Q_ABF_mean,Q_ABF_sd,Q_P_mean,Q_P_sd")
        );
        assert!(
            csv.contains("max,2,0.600000,0.000000,0.500000,0.141421"),
            "{csv}"
        );
        let per_pair = scores_csv(&rows);
        assert!(
            per_pair.contains("ct_mr_2.png,ct_mr,paper,0.700000,,700,7.000\n"),
            "{per_pair}"
        );
        assert!(per_pair.contains("ct_mr_2.png,ct_mr,max,0.600000,0.600000,,\n"));
        let cost = cost_table(&rows, &["paper", "max"]);
        assert!(
            cost.contains("| paper | 700 ± 0 | 6.00 ± 1.41 | 12.0 |\n"),
            "{cost}"
        );
        assert!(cost.contains("| max | n/a | n/a | n/a |\n"), "{cost}");
    }
}
