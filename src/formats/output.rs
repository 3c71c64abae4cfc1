//! Output files that never lose data: checks before any work (no output is an input or another
//! output, nothing is replaced without `--force`, every folder is writable), temporary siblings named
//! after their owner (host and process), all outputs of a job committed together, and the temps of
//! an interrupted run removed (this run's on SIGINT/SIGTERM, a dead run's on the next start).

use crate::error::{Error, Result};
use crate::fault;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Marks temporary files, so a later run can find those a killed run left behind.
pub const TEMP_MARK: &str = ".csfuse-tmp-";

/// This machine's name as temp files record it (several hosts may share an output folder).
fn host() -> &'static str {
    static HOST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .unwrap_or_default();
        let clean: String = raw
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if clean.is_empty() {
            "host".into()
        } else {
            clean
        }
    });
    &HOST
}

/// The owner tag of this process's temps: `HOST-PID`.
fn owner() -> String {
    format!("{}-{}", host(), std::process::id())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary sibling (file or folder) an atomic write of `path` goes through:
/// `.NAME.csfuse-tmp-HOST-PID` followed by `tag`.
pub fn temp_sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| Error::BadOutput {
        path: path.to_path_buf(),
        msg: "output path has no file name".into(),
    })?;
    let mut t = OsString::from(".");
    t.push(name);
    t.push(TEMP_MARK);
    t.push(owner());
    t.push(tag);
    Ok(parent_dir(path).join(t))
}

/// Temps this process has on disk, removed by [`interrupted`] on SIGINT/SIGTERM.
struct Live {
    paths: Vec<PathBuf>,
    closing: bool,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    paths: Vec::new(),
    closing: false,
});

fn live() -> std::sync::MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Record a temp before it is created; refused once the process is shutting down.
pub(crate) fn register(p: &Path) -> Result<()> {
    let mut l = live();
    if l.closing {
        return Err(Error::Interrupted("a signal"));
    }
    l.paths.push(p.to_path_buf());
    Ok(())
}

pub(crate) fn unregister(p: &Path) {
    live().paths.retain(|q| q != p);
}

fn remove_any(p: &Path) {
    let _ = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
}

/// Remove every temp this process has on disk and refuse new ones; called once by the signal
/// handler before it exits. Returns how many were removed.
pub fn interrupted() -> usize {
    let mut l = live();
    l.closing = true;
    let n = l.paths.len();
    for p in l.paths.drain(..) {
        remove_any(&p);
    }
    n
}

/// Install the SIGINT/SIGTERM handler: remove this run's temps, then exit 130 (SIGINT) or 143
/// (SIGTERM), as `timeout`, Slurm time limits and Kubernetes expect.
pub fn handle_signals() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            log::warn!("cannot install the SIGINT/SIGTERM handler; a killed run may leave temps");
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                let n = interrupted();
                eprintln!("csfuse: interrupted by {name}; removed {n} temporary file(s)");
                std::process::exit(128 + sig);
            }
        });
    }
}

/// fsync and close a written temp file.
fn sync(p: &Path) -> std::io::Result<()> {
    std::fs::File::open(p)?.sync_all()
}

/// Write `bytes` to a new file at `tmp` (registered as a temp).
fn write_temp(tmp: &Path, bytes: &[u8]) -> Result<()> {
    register(tmp)?;
    let result = fault::io_write(tmp)
        .and_then(|_| std::fs::File::create(tmp))
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    result.map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        unregister(tmp);
        Error::io(tmp, e)
    })
}

/// Write `bytes` to `path` via a temporary sibling file, fsync and rename (one output alone).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut set = OutputSet::default();
    set.stage_bytes(path, bytes)?;
    set.commit()
}

/// The outputs of one job, written as temps first and renamed into place together by
/// [`OutputSet::commit`], so a failure (disk full, a signal) leaves none of them. Dropping an
/// uncommitted set removes its temps.
#[derive(Default)]
pub struct OutputSet {
    /// (temp file, its temp folder if any, final path), in commit order.
    staged: Vec<(PathBuf, Option<PathBuf>, PathBuf)>,
}

impl OutputSet {
    /// Stage `bytes` as the future content of `path`.
    pub fn stage_bytes(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = temp_sibling(path, "")?;
        write_temp(&tmp, bytes)?;
        self.staged.push((tmp, None, path.to_path_buf()));
        Ok(())
    }

    /// Stage a file that `write` creates at the path it is given, inside a temporary sibling folder
    /// (for writers that choose their encoding by the file name, as the NIfTI writer does).
    pub fn stage_with(
        &mut self,
        path: &Path,
        file_name: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let dir = temp_sibling(path, "")?;
        register(&dir)?;
        let tmp = dir.join(file_name);
        let result = fault::io_write(&tmp)
            .and_then(|_| std::fs::create_dir(&dir))
            .map_err(|e| Error::io(&dir, e))
            .and_then(|_| write(&tmp))
            .and_then(|_| sync(&tmp).map_err(|e| Error::io(&tmp, e)));
        if let Err(e) = result {
            remove_any(&dir);
            unregister(&dir);
            return Err(e);
        }
        self.staged.push((tmp, Some(dir), path.to_path_buf()));
        Ok(())
    }

    /// Stage a folder holding `files` (name, bytes) as the future content of `path`: a DICOM
    /// series. A folder already at `path` is replaced by the commit (the caller checked that it
    /// may be, with [`check_folder_output`]).
    pub fn stage_folder(&mut self, path: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
        self.stage_with(path, "folder", |tmp| {
            std::fs::create_dir(tmp).map_err(|e| Error::io(tmp, e))?;
            for (name, bytes) in files {
                let p = tmp.join(name);
                fault::io_write(&p)
                    .and_then(|_| std::fs::File::create(&p))
                    .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
                    .map_err(|e| Error::io(&p, e))?;
            }
            Ok(())
        })
    }

    /// The staged temp holding `path`'s future content (to hash it before the commit).
    pub fn staged_file(&self, path: &Path) -> Option<&Path> {
        self.staged
            .iter()
            .find(|(_, _, p)| p == path)
            .map(|(t, _, _)| t.as_path())
    }

    /// Rename every staged temp onto its path, in staging order. If a rename fails, the outputs this
    /// commit already placed are removed again and the rest of the temps too.
    pub fn commit(mut self) -> Result<()> {
        fault::before_commit();
        let staged = std::mem::take(&mut self.staged);
        let mut placed: Vec<PathBuf> = Vec::new();
        // Holding the registry lock makes the renames atomic with respect to SIGINT/SIGTERM: the
        // handler waits, so a signal sees the set either all staged or all placed.
        let mut l = live();
        if l.closing {
            drop(l);
            self.staged = staged;
            return Err(Error::Interrupted("a signal"));
        }
        for (i, (tmp, dir, path)) in staged.iter().enumerate() {
            // A folder replacing a folder (a DICOM series with --force): the old one is moved
            // into the temp folder first, put back if the rename fails, else removed with it.
            let aside = match dir {
                Some(d) if tmp.is_dir() && path.is_dir() => Some(d.join("replaced")),
                _ => None,
            };
            let moved = match &aside {
                Some(a) => std::fs::rename(path, a),
                None => Ok(()),
            };
            if let Err(e) = moved.and_then(|_| std::fs::rename(tmp, path)) {
                if let Some(a) = aside.as_ref().filter(|a| a.exists()) {
                    let _ = std::fs::rename(a, path);
                }
                for p in &placed {
                    remove_any(p);
                }
                for (t, d, _) in &staged[i..] {
                    let owner = d.as_ref().unwrap_or(t);
                    remove_any(owner);
                    l.paths.retain(|q| q != owner);
                }
                return Err(Error::io(path, e));
            }
            if let Some(d) = dir {
                let _ = match aside {
                    Some(_) => std::fs::remove_dir_all(d),
                    None => std::fs::remove_dir(d),
                };
            }
            let owner = dir.as_ref().unwrap_or(tmp);
            l.paths.retain(|q| q != owner);
            placed.push(path.clone());
        }
        drop(l);
        // The renames are durable once the folders are synced (not possible on every platform).
        for p in &placed {
            if let Ok(d) = std::fs::File::open(parent_dir(p)) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        for (t, d, _) in self.staged.drain(..) {
            let owner = d.unwrap_or(t);
            remove_any(&owner);
            unregister(&owner);
        }
    }
}

/// Whether process `pid` of this host is alive.
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // Signal 0 checks existence; EPERM means it exists under another user.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The owner a temp's name records after `prefix`: `(host, pid)`; an old-style name holds the
/// pid alone (and this host).
fn temp_owner(rest: &str) -> Option<(String, u32)> {
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if let Some(i) = rest.rfind('-') {
        let (h, tail) = (&rest[..i], &rest[i + 1..]);
        let n = digits_end(tail);
        if n > 0 && !h.is_empty() {
            return Some((h.to_string(), tail[..n].parse().ok()?));
        }
    }
    let n = digits_end(rest);
    (n > 0).then(|| Some((host().to_string(), rest[..n].parse().ok()?)))?
}

/// Remove the temps a dead run of this host left for `path`. Temps of live runs (a concurrent
/// batch on the same folder) and of other hosts are left alone.
pub fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(TEMP_MARK);
    let prefix = prefix.as_encoded_bytes().to_vec();
    let Ok(entries) = std::fs::read_dir(parent_dir(path)) else {
        return;
    };
    for e in entries.flatten() {
        let fname = e.file_name();
        let Some(rest) = fname.as_encoded_bytes().strip_prefix(prefix.as_slice()) else {
            continue;
        };
        match temp_owner(&String::from_utf8_lossy(rest)) {
            Some((h, pid)) if h == host() && (pid == std::process::id() || !alive(pid)) => {
                log::info!("removing {} left by an interrupted run", e.path().display());
                remove_any(&e.path());
            }
            Some((h, pid)) => log::debug!(
                "leaving {}: it belongs to live process {pid} on {h}",
                e.path().display()
            ),
            None => {}
        }
    }
}

/// Canonical form of a path that may not exist yet: its deepest existing ancestor with symlinks
/// resolved, and the rest of its components as given (they do not exist, so hold no symlinks).
pub fn canonical_target(p: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(p).ok()?;
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            return Some(rest.iter().rev().fold(c, |acc, part| acc.join(part)));
        }
        rest.push(base.file_name()?);
        base = base.parent()?;
    }
}

/// Whether two paths name the same file (after resolving symlinks and `.`/`..`), whether or not
/// it exists yet.
pub fn same_target(a: &Path, b: &Path) -> bool {
    match (canonical_target(a), canonical_target(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Refuse an output that is one of the inputs.
fn refuse_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    match inputs.iter().find(|inp| same_target(out, inp)) {
        Some(inp) => Err(Error::BadOutput {
            path: out.to_path_buf(),
            msg: format!(
                "output is the same file as input {}; refusing to overwrite it",
                inp.display()
            ),
        }),
        None => Ok(()),
    }
}

/// Check, before any work, a job's outputs against its inputs and each other: no output is an
/// input or another output, an existing file is replaced only with `force`, and every output's
/// folder exists and takes a new file.
pub fn check_outputs(outputs: &[&Path], inputs: &[&Path], force: bool) -> Result<()> {
    for (i, out) in outputs.iter().enumerate() {
        let refuse = |msg: String| {
            Err(Error::BadOutput {
                path: out.to_path_buf(),
                msg,
            })
        };
        refuse_input(out, inputs)?;
        if let Some(prev) = outputs[..i].iter().find(|o| same_target(out, o)) {
            return refuse(format!(
                "the same file is given for two outputs (also {})",
                prev.display()
            ));
        }
        if out.is_dir() {
            return refuse("output path is a directory".into());
        }
        if out.exists() && !force {
            return refuse("file exists; pass --force to replace it".into());
        }
        let dir = parent_dir(out);
        if !dir.is_dir() {
            return refuse(format!("folder {} does not exist", dir.display()));
        }
        probe_writable(out)?;
    }
    Ok(())
}

/// Check, before any work, a folder output (a DICOM series): not an input, its parent exists and
/// takes new files, and an existing folder is replaced only with `force` and only when it holds
/// nothing but `.dcm` files (a series csfuse wrote), so that `--force` cannot delete other work.
pub fn check_folder_output(out: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    let refuse = |msg: String| {
        Err(Error::BadOutput {
            path: out.to_path_buf(),
            msg,
        })
    };
    refuse_input(out, inputs)?;
    if out.exists() {
        if !out.is_dir() {
            return refuse(
                "exists and is not a folder (a DICOM series is written as a folder)".into(),
            );
        }
        if !force {
            return refuse("folder exists; pass --force to replace it".into());
        }
        let entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
        for e in entries {
            let p = e.map_err(|e| Error::io(out, e))?.path();
            let dcm = p.extension().is_some_and(|x| x.eq_ignore_ascii_case("dcm"));
            if !dcm || !p.is_file() {
                return refuse(format!(
                    "folder holds {}, which is not a DICOM file csfuse writes; refusing to \
                     replace it even with --force (choose a new folder)",
                    p.display()
                ));
            }
        }
    }
    let dir = parent_dir(out);
    if !dir.is_dir() {
        return refuse(format!("folder {} does not exist", dir.display()));
    }
    probe_writable(out)
}

/// Create and remove a temp beside `out`, so a read-only folder fails now, not after the work.
pub fn probe_writable(out: &Path) -> Result<()> {
    let probe = temp_sibling(out, ".probe")?;
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::BadOutput {
            path: out.to_path_buf(),
            msg: format!(
                "cannot create files in folder {}: {e}",
                parent_dir(out).display()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_record_their_owner() {
        let t = temp_sibling(Path::new("d/f.png"), "x").unwrap();
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        let rest = name.strip_prefix(".f.png.csfuse-tmp-").unwrap();
        let rest = rest.strip_suffix('x').unwrap();
        assert_eq!(
            temp_owner(rest),
            Some((host().to_string(), std::process::id()))
        );
        assert_eq!(temp_owner("1234"), Some((host().to_string(), 1234)));
        assert_eq!(temp_owner("node7-99.probe"), Some(("node7".into(), 99)));
    }

    #[test]
    fn an_uncommitted_set_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.bin"), d.path().join("b.bin"));
        let mut set = OutputSet::default();
        set.stage_bytes(&a, b"1").unwrap();
        set.stage_bytes(&b, b"2").unwrap();
        assert!(set.staged_file(&a).unwrap().exists());
        drop(set);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let mut set = OutputSet::default();
        set.stage_bytes(&a, b"1").unwrap();
        set.stage_bytes(&b, b"2").unwrap();
        set.commit().unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn stale_temps_of_dead_processes_go_and_live_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("f.png");
        let mine = temp_sibling(&out, "").unwrap();
        // PID 1 is alive on every Unix; a huge pid is not.
        let live = d.path().join(format!(".f.png{TEMP_MARK}{}-1", host()));
        let dead = d
            .path()
            .join(format!(".f.png{TEMP_MARK}{}-4000000", host()));
        let other_host = d.path().join(format!(".f.png{TEMP_MARK}elsewhere-4000000"));
        for p in [&mine, &live, &dead, &other_host] {
            std::fs::write(p, b"x").unwrap();
        }
        remove_stale_temps(&out);
        assert!(!dead.exists() && !mine.exists());
        assert!(live.exists() && other_host.exists());
    }
}
