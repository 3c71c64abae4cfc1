//! `evaluate`'s report.html: the summary tables per group (sortable, the best mean of each metric
//! marked), a row per pair that opens its sources, every method's result and the decision maps at
//! full resolution with a swipe or blink comparison between any two, the box plots, and the
//! command, version and parameters that made it. The images are the PNG files `evaluate` writes
//! beside the page, referred to by relative paths, so the folder can be moved or archived whole.

use super::{escape, page, script_json};
use crate::evaluate::{summarize, Scored};
use serde_json::{json, Value};

/// One pair's pictures, as paths relative to the report.
pub struct PairImages {
    pub pair: String,
    pub a: String,
    pub b: String,
    /// Each method's result: method name, path.
    pub results: Vec<(String, String)>,
    /// Each CS-MCA method's decision maps: method name, cartoon and texture map paths.
    pub decisions: Vec<(String, [String; 2])>,
}

/// What the page says made it.
pub struct Provenance<'a> {
    pub command: &'a str,
    /// The parameters of each method, by name.
    pub parameters: Value,
    /// The pairs that failed: their line in the list and the error.
    pub failures: &'a [(usize, String)],
}

/// A table's cells: per method, per metric, `[mean, sd, n]` or null.
fn cells(rows: &[Scored], group: Option<&str>, methods: &[&str], metrics: &[&str]) -> Value {
    summarize(rows, group, methods, metrics)
        .into_iter()
        .map(|per_metric| {
            per_metric
                .into_iter()
                .map(|c| c.map_or(Value::Null, |(m, s, n)| json!([m, s, n])))
                .collect::<Value>()
        })
        .collect()
}

/// The page, with `rows` scored by `methods` on `metrics`, and the pictures of `pairs`.
pub fn report_html(
    rows: &[Scored],
    methods: &[&str],
    metrics: &[&str],
    pairs: &[PairImages],
    plots: &[(String, String)],
    made_by: &Provenance,
) -> String {
    let mut groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
    groups.sort();
    groups.dedup();
    let count = |g: Option<&str>| {
        rows.iter()
            .filter(|r| g.is_none_or(|g| r.group == g))
            .map(|r| r.pair.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let mut tables = vec![json!({
        "title": "All pairs", "pairs": count(None), "cells": cells(rows, None, methods, metrics),
    })];
    if groups.len() > 1 {
        for g in &groups {
            tables.push(json!({
                "title": format!("Group {g}"), "pairs": count(Some(g)),
                "cells": cells(rows, Some(g), methods, metrics),
            }));
        }
    }
    let scores: Vec<Value> = rows
        .iter()
        .map(|r| {
            let s: serde_json::Map<String, Value> = r
                .scores
                .iter()
                .map(|(k, v)| (k.clone(), v.map_or(Value::Null, Value::from)))
                .collect();
            json!({"pair": r.pair, "group": r.group, "method": r.method, "scores": s})
        })
        .collect();
    let pictures: Vec<Value> = pairs
        .iter()
        .map(|p| {
            json!({
                "pair": p.pair, "a": p.a, "b": p.b,
                "results": p.results.iter().map(|(m, f)| json!([m, f])).collect::<Vec<_>>(),
                "decisions": p.decisions.iter().map(|(m, [c, t])| json!([m, c, t])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let data = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "command": made_by.command,
        "parameters": made_by.parameters,
        "failures": made_by.failures.iter().map(|(l, e)| json!({"line": l, "error": e})).collect::<Vec<_>>(),
        "methods": methods,
        "metrics": metrics,
        "tables": tables,
        "scores": scores,
        "pairs": pictures,
        "plots": plots.iter().map(|(k, f)| json!([k, f])).collect::<Vec<_>>(),
    });
    let title = format!(
        "csfuse evaluate: {} pairs, {} methods",
        count(None),
        methods.len()
    );
    let body = format!(
        "<h1>{}</h1>\n<p class=\"note\">Mean ± sd of each metric (every one is higher-is-better); \
         the best mean of each column, at the precision shown, is marked. Click a column to sort \
         by it, and a pair to compare its pictures.</p>\n<div id=\"app\"></div>\n\
         <script type=\"application/json\" id=\"data\">{}</script>",
        escape(&title),
        script_json(&data)
    );
    page(&title, &body, include_str!("assets/report.js"))
}
