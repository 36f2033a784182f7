//! `timmconv batch`: the `convert` jobs of a manifest, one shard of them, several at once.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::args::{BatchArgs, ConvertArgs};
use crate::commands::convert;
use crate::{printer, Outcome};
use timmconv::conversion::OutputState;

/// Largest manifest read (about 200 000 typical lines).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Longest manifest line: one job with its arguments (a `--rename` pattern included).
pub const MAX_MANIFEST_LINE_BYTES: usize = 64 << 10;
/// Most jobs one manifest may hold; split a larger zoo into several manifests.
pub const MAX_MANIFEST_JOBS: usize = 100_000;

/// Most conversions `--jobs` runs at once: each holds a conversion's buffers and a thread, so
/// thousands at once exhaust memory (3 000 took 1.7 GB and ran past two minutes on 2 cores).
pub const MAX_PARALLEL_JOBS: usize = 256;

/// One manifest line as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    input: String,
    output: String,
    #[serde(default)]
    args: Vec<String>,
}

/// `convert`'s flags, parsed by the same clap definition `convert` uses.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Wrapper {
    #[command(flatten)]
    convert: ConvertArgs,
}

/// One job of the manifest, checked.
struct Job {
    line: usize,
    args: ConvertArgs,
    /// The file its output is, however it is spelt.
    output_id: timmconv::write::OutputId,
}

/// What happened to one job; one line of `--report`.
#[derive(Debug, Serialize)]
struct Record {
    line: usize,
    input: PathBuf,
    output: PathBuf,
    status: &'static str,
    error: Option<String>,
    seconds: f64,
    bytes_read: u64,
    bytes_written: u64,
}

/// Runs `batch`.
pub fn run(a: BatchArgs) -> anyhow::Result<Outcome> {
    if let Some(j) = a.jobs.filter(|j| *j > MAX_PARALLEL_JOBS) {
        anyhow::bail!(
            "limit exceeded: --jobs {j} (more than {MAX_PARALLEL_JOBS}, the limit \
             `MAX_PARALLEL_JOBS`); conversions at once beyond the cores only share the disk"
        );
    }
    let jobs = read_manifest(&a.manifest)?;
    if let Some(p) = &a.report {
        // the report appended to an output (or the manifest) would corrupt it
        let id = timmconv::write::OutputId::of(p)?;
        if let Some(j) = jobs.iter().find(|j| j.output_id == id) {
            anyhow::bail!(
                "--report {} is line {}'s output; give the report another name",
                printable_path(p),
                j.line
            );
        }
        if timmconv::write::OutputId::of(&a.manifest).is_ok_and(|m| m == id) {
            anyhow::bail!("--report {} is the manifest itself", printable_path(p));
        }
    }
    let (index, count, why) = shard(&a)?;
    if !a.quiet {
        printer::note(format_args!("shard {index}/{count} ({why})"));
    }
    let mine: Vec<Job> = jobs
        .into_iter()
        .enumerate()
        .filter(|(k, _)| k % count == index)
        .map(|(_, j)| j)
        .collect();
    let workers = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, mine.len().max(1));
    let mut report = match &a.report {
        Some(p) => Some(open_report(p)?),
        None => None,
    };
    // an input that cannot be read (or a hub name) counts as empty: it starts last
    let sizes: Vec<u64> = mine
        .iter()
        .map(|j| std::fs::metadata(&j.args.input).map_or(0, |m| m.len()))
        .collect();
    let order = run_order(&sizes, workers);
    let bar = jobs_bar(mine.len() as u64, a.quiet);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let bytes = AtomicU64::new(0);
    let records = Mutex::new(Vec::with_capacity(mine.len()));
    let report_file = Mutex::new(report.as_mut());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some(job) = order
                    .get(next.fetch_add(1, Ordering::Relaxed))
                    .map(|&k| &mine[k])
                else {
                    break;
                };
                let r = run_job(job, a.no_hash, &bytes, bar.as_ref());
                if r.status == "failed" && a.fail_fast {
                    stop.store(true, Ordering::Relaxed);
                }
                if let Some(b) = &bar {
                    b.inc(1);
                    b.set_message(printer::bytes(bytes.load(Ordering::Relaxed)));
                }
                if let Ok(mut f) = report_file.lock() {
                    if let Some(f) = f.as_mut() {
                        let _ = serde_json::to_writer(&mut **f, &r)
                            .map_err(std::io::Error::from)
                            .and_then(|()| f.write_all(b"\n"));
                    }
                }
                if let Ok(mut v) = records.lock() {
                    v.push(r);
                }
            });
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut records = records.into_inner().unwrap_or_else(|e| e.into_inner());
    records.sort_by_key(|r| r.line);
    let count_of = |s: &str| records.iter().filter(|r| r.status == s).count();
    let (converted, skipped, failed) = (
        count_of("converted"),
        count_of("skipped"),
        count_of("failed"),
    );
    if a.json {
        printer::json(&records)?;
    }
    if !a.quiet {
        for r in &records {
            match &r.error {
                // the message names paths a manifest chose: escaped, as every name read from a file
                Some(e) => printer::error(format_args!(
                    "line {}: {}",
                    r.line,
                    timmconv::error::printable(e)
                )),
                None if a.verbose => printer::note(format_args!(
                    "line {}: {} {}",
                    r.line,
                    r.status,
                    r.output.display()
                )),
                None => {}
            }
        }
        let not_started = mine.len() - records.len();
        printer::note(format_args!(
            "{converted} converted, {skipped} skipped, {failed} failed{}",
            if not_started > 0 {
                format!(", {not_started} not started (--fail-fast)")
            } else {
                String::new()
            }
        ));
    }
    Ok(if failed > 0 || records.len() < mine.len() {
        Outcome::Finding
    } else {
        Outcome::Success
    })
}

/// The order the jobs start in, given their inputs' sizes. With several at once, the largest
/// first (ties in manifest order): the last jobs to start are then the shortest, and the workers
/// finish nearly together instead of one converting a large file alone at the end. On a
/// mid-size zoo listed family by family (docs/performance.md), `--jobs 2` took 0.98x the time
/// of the manifest's order without hashing and 1.00x with it (15 pairs each), at 33 MB of peak
/// RSS instead of 40. One worker keeps the manifest's order (what `--fail-fast` stops after is
/// then the manifest's next line).
fn run_order(sizes: &[u64], workers: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    if workers > 1 {
        order.sort_by_key(|&k| std::cmp::Reverse(sizes[k]));
    }
    order
}

/// The `--report` file, opened to append: a regular file only (created if missing), like every
/// output; a FIFO is never opened (it would block until a reader comes) nor a device written.
fn open_report(p: &Path) -> anyhow::Result<std::fs::File> {
    timmconv::write::check_replaceable(p, false)?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .custom_flags(i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or_default());
    }
    let f = options
        .open(p)
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        anyhow::bail!(
            "{}: not a regular file; the report is only appended to one",
            p.display()
        );
    }
    Ok(f)
}

/// Reads and checks every line before anything runs: a regular file within
/// [`MAX_MANIFEST_BYTES`], lines within [`MAX_MANIFEST_LINE_BYTES`], at most
/// [`MAX_MANIFEST_JOBS`] jobs, no output written by two jobs.
fn read_manifest(path: &Path) -> anyhow::Result<Vec<Job>> {
    let text =
        timmconv::small_file::read_existing_text(path, "MAX_MANIFEST_BYTES", MAX_MANIFEST_BYTES)?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut jobs = Vec::new();
    let mut outputs: HashMap<timmconv::write::OutputId, usize> = HashMap::new();
    let mut inputs: HashMap<timmconv::write::OutputId, usize> = HashMap::new();
    // the sizes first, in one cheap pass, before any line is parsed
    let mut count = 0usize;
    for (i, raw) in text.lines().enumerate() {
        if raw.len() > MAX_MANIFEST_LINE_BYTES {
            anyhow::bail!(
                "{}: line {}: limit exceeded: bytes of one line ({} > {MAX_MANIFEST_LINE_BYTES}, \
                 the limit `MAX_MANIFEST_LINE_BYTES`)",
                path.display(),
                i + 1,
                raw.len()
            );
        }
        count += usize::from(!raw.trim().is_empty());
    }
    if count > MAX_MANIFEST_JOBS {
        anyhow::bail!(
            "{}: limit exceeded: jobs in one manifest ({count} > {MAX_MANIFEST_JOBS}, the limit \
             `MAX_MANIFEST_JOBS`); split it into several manifests",
            path.display()
        );
    }
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |why: String| anyhow::anyhow!("{}: line {line}: {why}", path.display());
        let l: Line = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        // a hub name is no path: it stays as convert takes it
        let input = if l.input.starts_with("hf-hub:") {
            PathBuf::from(&l.input)
        } else {
            base.join(&l.input)
        };
        let output = base.join(&l.output);
        let mut argv: Vec<std::ffi::OsString> =
            vec![input.into(), "--output".into(), output.into()];
        argv.extend(l.args.iter().map(Into::into));
        let w = Wrapper::try_parse_from(argv).map_err(|e| bad(clap_message(&e)))?;
        convert::options_sha256(&w.convert).map_err(|e| bad(format!("{e:#}")))?;
        // one file however it is spelt: `out`, `sub/../out`, a path through a linked folder
        let id = timmconv::write::OutputId::of(&w.convert.output)
            .map_err(|e| bad(format!("output {}: {e}", printable_path(&w.convert.output))))?;
        if let Some(first) = outputs.get(&id) {
            return Err(bad(format!(
                "output {} is also line {first}'s (the same file, however it is spelt); two \
                 jobs never write one output",
                printable_path(&w.convert.output)
            )));
        }
        // one job's output read as another's input: which version it reads would depend on
        // the order the jobs happen to run in
        if let Some(reader) = inputs.get(&id) {
            return Err(bad(format!(
                "output {} is line {reader}'s input; one batch never reads what it writes",
                printable_path(&w.convert.output)
            )));
        }
        if !l.input.starts_with("hf-hub:") {
            let input_id = timmconv::write::OutputId::of(&w.convert.input)
                .map_err(|e| bad(format!("input {}: {e}", printable_path(&w.convert.input))))?;
            if let Some(writer) = outputs.get(&input_id) {
                return Err(bad(format!(
                    "input {} is line {writer}'s output; one batch never reads what it writes",
                    printable_path(&w.convert.input)
                )));
            }
            inputs.entry(input_id).or_insert(line);
        }
        outputs.insert(id.clone(), line);
        jobs.push(Job {
            line,
            args: w.convert,
            output_id: id,
        });
    }
    Ok(jobs)
}

/// A path from a manifest as it may be printed: control characters escaped, so a name cannot
/// rewrite the terminal.
fn printable_path(p: &Path) -> String {
    timmconv::error::printable(&p.display().to_string()).into_owned()
}

/// clap's error for a manifest line: its `error:` line and its tips ("a similar argument
/// exists"), as `convert` prints them.
fn clap_message(e: &clap::Error) -> String {
    let msg = e.to_string();
    let lines = msg.lines().map(str::trim);
    let first = lines
        .clone()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(msg.trim())
        .trim_start_matches("error: ")
        .to_owned();
    let tips: Vec<&str> = lines.filter(|l| l.starts_with("tip:")).collect();
    if tips.is_empty() {
        first
    } else {
        format!("{first} ({})", tips.join("; "))
    }
}

/// The shard to run: (index, count, where it came from).
fn shard(a: &BatchArgs) -> anyhow::Result<(usize, usize, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let num = |k: &str, v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| anyhow::anyhow!("{k}=`{v}` is not a non-negative integer"))
    };
    let (index, count, why) = if let Some(s) = &a.shard {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("--shard `{s}` is not I/N"))?;
        let (i, n) = (num("--shard", i)?, num("--shard", n)?);
        if let Some(c) = a.shard_count.filter(|c| *c != n) {
            anyhow::bail!("--shard {s} says {n} shards, --shard-count says {c}: give one of them");
        }
        (i, n, "--shard".to_owned())
    } else if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
        let id = num("SLURM_ARRAY_TASK_ID", &id)?;
        let min = env("SLURM_ARRAY_TASK_MIN")
            .map(|v| num("SLURM_ARRAY_TASK_MIN", &v))
            .transpose()?
            .unwrap_or(0);
        let step = env("SLURM_ARRAY_TASK_STEP")
            .map(|v| num("SLURM_ARRAY_TASK_STEP", &v))
            .transpose()?
            .unwrap_or(1)
            .max(1);
        let index = id.checked_sub(min).ok_or_else(|| {
            anyhow::anyhow!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
        })? / step;
        if let Some(c) = env("SLURM_ARRAY_TASK_COUNT") {
            let count = num("SLURM_ARRAY_TASK_COUNT", &c)?;
            (
                index,
                count,
                format!("SLURM_ARRAY_TASK_ID {id} of SLURM_ARRAY_TASK_COUNT {count}"),
            )
        } else if let Some(max) = env("SLURM_ARRAY_TASK_MAX") {
            let max = num("SLURM_ARRAY_TASK_MAX", &max)?;
            // checked: SLURM_ARRAY_TASK_MAX = 2^64 - 1 with step 1 must not wrap to 0 tasks
            let count = max
                .checked_sub(min)
                .and_then(|d| (d / step).checked_add(1))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "SLURM_ARRAY_TASK_MIN {min}, SLURM_ARRAY_TASK_MAX {max} and \
                         SLURM_ARRAY_TASK_STEP {step} overflow the task count ((MAX - MIN) / STEP + 1)"
                    )
                })?;
            (
                index,
                count,
                format!(
                    "SLURM_ARRAY_TASK_ID {id} of SLURM_ARRAY_TASK_MIN {min} to \
                     SLURM_ARRAY_TASK_MAX {max} step {step}: {count} tasks"
                ),
            )
        } else {
            anyhow::bail!("SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is");
        }
    } else if let Some(idx) = env("JOB_COMPLETION_INDEX") {
        let index = num("JOB_COMPLETION_INDEX", &idx)?;
        let (count, src) = match (a.shard_count, env("TIMMCONV_SHARD_COUNT")) {
            (Some(n), _) => (n, "--shard-count".to_owned()),
            (None, Some(v)) => (num("TIMMCONV_SHARD_COUNT", &v)?, "TIMMCONV_SHARD_COUNT".to_owned()),
            (None, None) => anyhow::bail!(
                "JOB_COMPLETION_INDEX is set: give the shard count with --shard-count or TIMMCONV_SHARD_COUNT"
            ),
        };
        (
            index,
            count,
            format!("JOB_COMPLETION_INDEX {index} of {count} from {src}"),
        )
    } else {
        (
            0,
            1,
            "no --shard, Slurm or Kubernetes index: all jobs".to_owned(),
        )
    };
    if count == 0 || index >= count {
        anyhow::bail!("shard {index}/{count} ({why}) is out of range");
    }
    Ok((index, count, why))
}

/// Converts one job, or skips it when its output is current; never panics the batch.
fn run_job(
    job: &Job,
    no_hash: bool,
    bytes: &AtomicU64,
    bar: Option<&indicatif::ProgressBar>,
) -> Record {
    let started = Instant::now();
    // `batch --no-hash` converts without hashing too, so outputs record size and mtime instead;
    // an output timmconv wrote for other options or another input is stale, and replaced
    let check = if job.args.force {
        None
    } else {
        convert::output_state(&job.args, no_hash || job.args.no_hash)
    };
    let is_current = check.is_some_and(|c| c.state == OutputState::Current);
    let stale = check.is_some_and(|c| c.state == OutputState::Stale);
    let mut args;
    let a = if (no_hash && !job.args.no_hash) || stale {
        args = job.args.clone();
        args.no_hash |= no_hash;
        args.force |= stale;
        &args
    } else {
        &job.args
    };
    // what this job read of its input: the hash that checked an existing output, plus the whole
    // input when it is converted; a failed conversion counts only the check's
    let mut rec = Record {
        line: job.line,
        input: a.input.clone(),
        output: a.output.clone(),
        status: "converted",
        error: None,
        seconds: 0.0,
        bytes_read: check.map_or(0, |c| c.input_bytes_read),
        bytes_written: 0,
    };
    if is_current {
        rec.status = "skipped";
    } else {
        let mut last = 0;
        // a zoo's outputs go to a tree of folders: make the output's, as `mkdir -p` would
        let parent = a.output.parent().filter(|p| !p.as_os_str().is_empty());
        let result = parent
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| anyhow::anyhow!("{}: {e}", parent.unwrap_or(Path::new("")).display()))
            .and_then(|()| {
                convert::execute(a, |done, _| {
                    bytes.fetch_add(done.saturating_sub(last), Ordering::Relaxed);
                    last = done;
                    if let Some(b) = bar {
                        b.set_message(printer::bytes(bytes.load(Ordering::Relaxed)));
                    }
                })
            });
        match result {
            Ok(r) => {
                rec.bytes_written = r.bytes;
                let size = r
                    .input
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map_or(0, |m| m.len());
                rec.bytes_read = rec.bytes_read.saturating_add(size);
            }
            Err(e) => {
                rec.status = "failed";
                rec.error = Some(e.to_string());
            }
        }
    }
    rec.seconds = started.elapsed().as_secs_f64();
    rec
}

/// A progress bar of jobs with the bytes converted, on a terminal only.
fn jobs_bar(total: u64, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || total == 0 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} jobs, {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::run_order;

    #[test]
    fn several_workers_start_the_largest_inputs_first_one_keeps_the_manifest_order() {
        let sizes = [10, 30, 0, 20, 30];
        assert_eq!(run_order(&sizes, 2), [1, 4, 3, 0, 2]);
        assert_eq!(run_order(&sizes, 1), [0, 1, 2, 3, 4]);
    }
}
