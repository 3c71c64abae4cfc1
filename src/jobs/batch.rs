//! Batches: a CSV list of pairs, a deterministic share of it per shard, and the sidecar JSON that
//! makes a re-run skip finished items (so a killed run resumes and a repeated run is a no-op).

use crate::error::{Error, Result};
use crate::jobs::{kind, JobOptions, Kind};
use crate::real::Precision;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// One row of the list.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// 0-based position among the list's data rows (what shards split on).
    pub index: usize,
    /// 1-based line in the file (for messages).
    pub line: usize,
    pub a: PathBuf,
    pub b: PathBuf,
    pub out: PathBuf,
}

fn list_err(path: &Path, line: usize, msg: impl std::fmt::Display) -> Error {
    Error::Param(format!("{}:{line}: {msg}", path.display()))
}

/// Read a list: rows `A,B[,OUTPUT]`; `#` starts a comment line; a first row `a,b[,output]` is a
/// header. Relative inputs are relative to the list's folder. OUTPUT is a relative path under
/// `out_dir` (default `<stem of A>__<stem of B>` with A's extension, `.nii.gz` for volumes). Two rows
/// naming the same output are refused.
pub fn read_list(path: &Path, out_dir: &Path) -> Result<Vec<Item>> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_list(path, &text, out_dir)
}

/// [`read_list`] on the list's bytes (`path` names it in messages and anchors relative inputs).
pub fn parse_list(path: &Path, text: &[u8], out_dir: &Path) -> Result<Vec<Item>> {
    // Line numbers are counted here from byte offsets: the reader's own count skips comments.
    let line_of = |byte: u64| {
        // A record's position can point at the blank and comment lines before it; its line is
        // that of its first byte.
        let mut at = (byte as usize).min(text.len());
        while at < text.len() {
            match text[at] {
                b'\n' | b'\r' => at += 1,
                b'#' => {
                    at = text[at..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(text.len(), |n| at + n + 1)
                }
                _ => break,
            }
        }
        1 + text[..at].iter().filter(|b| **b == b'\n').count()
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut items: Vec<Item> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::Param(format!("{}: {e}", path.display())))?;
        let line = rec.position().map_or(0, |p| line_of(p.byte()));
        let fields: Vec<&str> = rec.iter().collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        let lower: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
        if items.is_empty() && lower.len() >= 2 && lower[0] == "a" && lower[1] == "b" {
            continue;
        }
        if !(2..=3).contains(&fields.len()) || fields[..2].iter().any(|f| f.is_empty()) {
            return Err(list_err(path, line, "expected `A,B` or `A,B,OUTPUT`"));
        }
        let (a, b) = (base.join(fields[0]), base.join(fields[1]));
        let name = match fields.get(2).filter(|f| !f.is_empty()) {
            Some(o) => {
                let o = Path::new(o);
                if o.is_absolute() || o.components().any(|c| c == Component::ParentDir) {
                    return Err(list_err(
                        path,
                        line,
                        format!(
                            "output {} must be a relative path inside --out-dir",
                            o.display()
                        ),
                    ));
                }
                o.to_path_buf()
            }
            None => PathBuf::from(default_name(&a, &b)),
        };
        let out = out_dir.join(name);
        if let Some(prev) = items.iter().find(|i| i.out == out) {
            return Err(list_err(
                path,
                line,
                format!(
                    "output {} is also written by line {}",
                    out.display(),
                    prev.line
                ),
            ));
        }
        items.push(Item {
            index: items.len(),
            line,
            a,
            b,
            out,
        });
    }
    if items.is_empty() {
        return Err(Error::Param(format!(
            "{}: the list has no pairs",
            path.display()
        )));
    }
    Ok(items)
}

/// File name without its extension(s) (`x.nii.gz` -> `x`), and the extension with its dot; names
/// that are not UTF-8 are kept as they are.
fn split_name(p: &Path) -> (OsString, OsString) {
    let name = Path::new(p.file_name().unwrap_or_default());
    let lower = name.to_string_lossy().to_ascii_lowercase();
    let stem_of = |n: &Path| n.file_stem().unwrap_or_default().to_os_string();
    let dotted = |e: &str| OsString::from(format!(".{e}"));
    if lower.ends_with(".nii.gz") {
        return (stem_of(Path::new(&stem_of(name))), dotted("nii.gz"));
    }
    match name.extension() {
        Some(e) => {
            let mut ext = OsString::from(".");
            ext.push(e);
            (stem_of(name), ext)
        }
        None => (name.as_os_str().to_os_string(), OsString::new()),
    }
}

fn default_name(a: &Path, b: &Path) -> OsString {
    let (mut name, ext) = split_name(a);
    let (sb, _) = split_name(b);
    name.push("__");
    name.push(sb);
    if kind(a) == Kind::Volume {
        name.push(".nii.gz");
    } else {
        name.push(ext);
    }
    name
}

/// Shard `index` of `count` (0-based): it takes the items whose position modulo `count` is `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// `i/n`, 0 <= i < n.
    pub fn parse(s: &str) -> std::result::Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: use i/n with 0 <= i < n (e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || i >= n {
            return Err(bad());
        }
        Ok(Shard { index: i, count: n })
    }

    /// The shard the environment names: a Slurm array task or a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX, of `count`). `None` when neither is set.
    ///
    /// Under Slurm with `count` (`--shards N`) the task id is the shard index itself, so an array
    /// may hold any subset of 0..N (`--array=1,3` resubmits two shards); without it the array
    /// must be contiguous and the shard is SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN, of
    /// SLURM_ARRAY_TASK_COUNT.
    pub fn from_env(
        count: Option<usize>,
    ) -> std::result::Result<Option<(Shard, &'static str)>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let num = |k: &str, v: String| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{k}={v} is not a number"))
        };
        if let Some(id) = var("SLURM_ARRAY_TASK_ID") {
            let id = num("SLURM_ARRAY_TASK_ID", id)?;
            if let Some(n) = count {
                if id >= n {
                    return Err(format!(
                        "SLURM_ARRAY_TASK_ID={id} is not below --shards {n}: the array's task ids \
                         are shard indices, 0 to {}",
                        n - 1
                    ));
                }
                return Ok(Some((
                    Shard {
                        index: id,
                        count: n,
                    },
                    "SLURM_ARRAY_TASK_ID",
                )));
            }
            let min = var("SLURM_ARRAY_TASK_MIN")
                .map(|v| num("SLURM_ARRAY_TASK_MIN", v))
                .transpose()?
                .unwrap_or(0);
            let n = num(
                "SLURM_ARRAY_TASK_COUNT",
                var("SLURM_ARRAY_TASK_COUNT").ok_or(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shards N",
                )?,
            )?;
            let max = var("SLURM_ARRAY_TASK_MAX")
                .map(|v| num("SLURM_ARRAY_TASK_MAX", v))
                .transpose()?;
            // A sparse or stepped array (--array=1,3 or 0-9:2) has gaps: its ids are not 0..count.
            if max.is_some_and(|max| max.checked_sub(min).map(|d| d + 1) != Some(n)) {
                return Err(format!(
                    "the Slurm array is not contiguous (tasks {min} to {}, {n} of them): pass \
                     --shards N so that each task id is a shard index",
                    max.unwrap_or_default()
                ));
            }
            let i = id.checked_sub(min).filter(|i| *i < n).ok_or_else(|| {
                format!("SLURM_ARRAY_TASK_ID={id} (min {min}) is outside {n} tasks; use a contiguous array such as --array=0-{}", n.max(1) - 1)
            })?;
            return Ok(Some((Shard { index: i, count: n }, "SLURM_ARRAY_TASK_ID")));
        }
        if let Some(idx) = var("JOB_COMPLETION_INDEX") {
            let i = num("JOB_COMPLETION_INDEX", idx)?;
            let n = count
                .ok_or("JOB_COMPLETION_INDEX is set; pass --shards N (the Job's completions)")?;
            if i >= n {
                return Err(format!(
                    "JOB_COMPLETION_INDEX={i} is not below --shards {n}"
                ));
            }
            return Ok(Some((Shard { index: i, count: n }, "JOB_COMPLETION_INDEX")));
        }
        if let Some(n) = count {
            // Several pods or tasks would each do the whole list.
            return Err(format!(
                "--shards {n} is given but no shard index: set JOB_COMPLETION_INDEX (Kubernetes \
                 Indexed Job) or SLURM_ARRAY_TASK_ID, or pass --shard i/{n}"
            ));
        }
        Ok(None)
    }

    /// The shard of `count` that takes `item`.
    pub fn of(item: &Item, count: usize) -> Shard {
        Shard {
            index: item.index % count,
            count,
        }
    }

    pub fn takes(&self, item: &Item) -> bool {
        Shard::of(item, self.count) == *self
    }
}

/// Hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything that changes an output besides the inputs: fusion parameters, the dictionaries'
/// contents, output options and precision. The engine is not part of it (GPU and CPU agree within
/// `--validate`'s tolerance).
pub fn parameters(opts: &JobOptions, precision: Precision, montage: bool) -> Value {
    let dict_hash = |d: &crate::dictionary::Dictionary| {
        let mut h = Sha256::new();
        h.update(format!("{}x{}x{}", d.fh, d.fw, d.m));
        d.data.iter().for_each(|v| h.update(v.to_le_bytes()));
        hex(&h.finalize())
    };
    json!({
        "fuse": opts.params,
        "cartoon_dict_sha256": dict_hash(&opts.cartoon),
        "texture_dict_sha256": dict_hash(&opts.texture),
        "out_depth": opts.out_depth,
        "axis": opts.axis,
        "ignore_affine": opts.ignore_affine,
        "interp": opts.interp,
        "grid": opts.grid,
        "intensity_range": opts.intensity,
        "precision": precision.name(),
        "montage": montage,
    })
}

/// The sidecar of an output: `F.png` -> `F.png.json`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Size and hex SHA-256 of an input: a file's bytes, or for a folder (a DICOM series) its files'
/// names and hashes, one line each in name order (hidden files left out, as the reader does), so
/// that a slice changed, added or removed makes the item out of date.
pub fn input_digest(path: &Path) -> Result<(u64, String)> {
    if !path.is_dir() {
        let bytes = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        return Ok((bytes, sha256_file(path)?));
    }
    let mut files = Vec::new();
    for e in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let e = e.map_err(|e| Error::io(path, e))?;
        let name = e.file_name();
        if !name.to_string_lossy().starts_with('.') && e.path().is_file() {
            files.push(name);
        }
    }
    files.sort();
    let (mut bytes, mut h) = (0, Sha256::new());
    for name in files {
        let p = path.join(&name);
        bytes += std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
        h.update(format!(
            "{}\0{}\n",
            name.to_string_lossy(),
            sha256_file(&p)?
        ));
    }
    Ok((bytes, hex(&h.finalize())))
}

/// The input records a sidecar keeps: path, size and SHA-256 ([`input_digest`]).
pub fn input_records(item: &Item) -> Result<Value> {
    let rec = |p: &Path| -> Result<Value> {
        let (bytes, sha) = input_digest(p)?;
        Ok(json!({"path": p.to_string_lossy(), "bytes": bytes, "sha256": sha}))
    };
    Ok(json!([rec(&item.a)?, rec(&item.b)?]))
}

/// The montage written beside an output: `F.png` -> `F.png.montage.png`.
pub fn montage_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".montage.png");
    PathBuf::from(s)
}

/// The volume view written beside an output: `F.nii.gz` -> `F.nii.gz.view.html`.
pub fn view_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".view.html");
    PathBuf::from(s)
}

/// The files an item writes beside its output and sidecar, each recorded in the sidecar under its
/// key: the montage (`--montage`) and, for a volume item, the volume view (`--html`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    pub montage: bool,
    pub html: bool,
}

impl Extras {
    /// Sidecar key and path of each extra file of the item that writes `out`.
    pub fn files(self, out: &Path) -> Vec<(&'static str, PathBuf)> {
        let mut v = Vec::new();
        if self.montage {
            v.push(("montage", montage_path(out)));
        }
        if self.html {
            v.push(("html", view_path(out)));
        }
        v
    }
}

/// What is on disk for an item, read once: its sidecar (when csfuse wrote it) and the SHA-256 of
/// its output and extra files (when they exist).
pub struct OnDisk {
    out: PathBuf,
    side: Option<Value>,
    /// A file is at the sidecar's path, csfuse's or not.
    side_exists: bool,
    out_sha: Option<String>,
    /// Each extra file asked for: its sidecar key, path and SHA-256 (when it exists).
    extra_sha: Vec<(&'static str, PathBuf, Option<String>)>,
}

impl OnDisk {
    pub fn read(out: &Path, extras: Extras) -> Self {
        let side_path = sidecar_path(out);
        let side = std::fs::read(&side_path)
            .ok()
            .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
            .filter(|v| v.get("csfuse_version").is_some());
        let hash = |p: &Path| p.exists().then(|| sha256_file(p).ok()).flatten();
        OnDisk {
            out: out.to_path_buf(),
            side,
            side_exists: side_path.exists(),
            out_sha: hash(out),
            extra_sha: extras
                .files(out)
                .into_iter()
                .map(|(k, p)| {
                    let sha = hash(&p);
                    (k, p, sha)
                })
                .collect(),
        }
    }

    /// Whether the sidecar records `sha` for `key` (`output`, `montage`, `html`).
    fn vouches(&self, key: &str, sha: &Option<String>) -> bool {
        match (&self.side, sha) {
            (Some(side), Some(sha)) => side[key]["sha256"].as_str() == Some(sha),
            _ => false,
        }
    }

    /// Whether the item is finished for these inputs and parameters: its sidecar records the same
    /// input hashes and parameters, and the hashes of the output (so a truncated or replaced output
    /// is redone) and of the extra files it was read for.
    pub fn up_to_date(&self, inputs: &Value, params: &Value) -> bool {
        let Some(side) = &self.side else {
            return false;
        };
        let hashes = |v: &Value| -> Vec<Value> {
            v.as_array()
                .map(|a| a.iter().map(|r| r["sha256"].clone()).collect())
                .unwrap_or_default()
        };
        hashes(&side["inputs"]) == hashes(inputs)
            && side["parameters"] == *params
            && self.vouches("output", &self.out_sha)
            && self
                .extra_sha
                .iter()
                .all(|(k, _, sha)| self.vouches(k, sha))
    }

    /// The seconds and CPU threads the sidecar says the item took (what `batch --plan` measures
    /// a list's speed by); `None` for sidecars of csfuse versions that did not record threads.
    pub fn spent(&self) -> Option<(f64, usize)> {
        let side = self.side.as_ref()?;
        Some((
            side["seconds"].as_f64()?,
            side["threads"].as_u64()? as usize,
        ))
    }

    /// The item's files (output, sidecar, extra files) that exist but that no csfuse sidecar vouches
    /// for: not written by csfuse, or changed since. Batch replaces them only with `--force`.
    pub fn foreign(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if self.side_exists && self.side.is_none() {
            v.push(sidecar_path(&self.out));
        }
        if self.out_sha.is_some() && !self.vouches("output", &self.out_sha) {
            v.push(self.out.clone());
        }
        for (k, p, sha) in &self.extra_sha {
            if sha.is_some() && !self.vouches(k, sha) {
                v.push(p.clone());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_deterministically() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("1/0").is_err());
        assert!(Shard::parse("x").is_err());
        let item = |index| Item {
            index,
            line: 0,
            a: "a".into(),
            b: "b".into(),
            out: "o".into(),
        };
        let s = Shard { index: 1, count: 3 };
        let taken: Vec<usize> = (0..8).filter(|i| s.takes(&item(*i))).collect();
        assert_eq!(taken, vec![1, 4, 7]);
    }

    #[test]
    fn lists_parse_with_header_comments_and_default_names() {
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("l.csv");
        std::fs::write(
            &list,
            "a,b,output\n# comment\nct/1.png, mr/1.png\n\"x,1.nii.gz\",y.nii.gz,v/o.nii.gz\n",
        )
        .unwrap();
        let items = read_list(&list, Path::new("out")).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].a, d.path().join("ct/1.png"));
        assert_eq!(items[0].out, Path::new("out/1__1.png"));
        assert_eq!(items[1].a, d.path().join("x,1.nii.gz"));
        assert_eq!(items[1].out, Path::new("out/v/o.nii.gz"));
        assert_eq!(items[1].line, 4);
        std::fs::write(&list, "a.png,b.png\na.png,b.png\n").unwrap();
        let e = read_list(&list, Path::new("out")).unwrap_err().to_string();
        assert!(
            e.contains("l.csv:2") && e.contains("also written by line 1"),
            "{e}"
        );
        std::fs::write(&list, "a.png,b.png,../x.png\n").unwrap();
        assert!(read_list(&list, Path::new("out")).is_err());
        std::fs::write(&list, "a.png\n").unwrap();
        assert!(read_list(&list, Path::new("out"))
            .unwrap_err()
            .to_string()
            .contains("l.csv:1"));
    }
}
