//! Writing a planned conversion into a safetensors file: the input hashed on a second thread,
//! the metadata recorded in the header, the report of what was done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::adapt::{Plan, Report};
use crate::checkpoint::crc::CrcFeed;
use crate::checkpoint::{Checkpoint, Format, Skipped};
use crate::conversion::{Settings, WriteOptions};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::write::{self, Entry};

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    /// The input file.
    pub input: PathBuf,
    /// The written file.
    pub output: PathBuf,
    /// The input's container.
    pub format: Format,
    /// The top-level key the state dict came from.
    pub state_key: Option<String>,
    /// Hex SHA-256 of the input (empty with `no_hash`).
    pub source_sha256: String,
    /// Which expectation the SHA-256 was checked against, if any.
    pub sha256_checked: Option<String>,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub bytes: u64,
    /// Non-tensor entries of the state dict, left out.
    pub skipped: Vec<Skipped>,
    /// Adaptations, drops, renames and casts.
    #[serde(flatten)]
    pub plan: Report,
}

/// The SHA-256 prefix that torch hub and timm put in file names (`resnet50-0676ba61.pth`).
pub(crate) fn hash_in_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let re = regex::Regex::new(r"-([0-9a-f]{8,64})\.(pth|pt|bin|ckpt|pth\.tar)$").ok()?;
    re.captures(name).map(|c| c[1].to_owned())
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Checks the output path before any work: not the input, not an existing file unless
/// overwriting.
pub(crate) fn check_output(input: &Path, output: &Path, overwrite: bool) -> Result<()> {
    crate::write::check_replaceable(output, false)?;
    if same_file(input, output) {
        return Err(Error::OutputIsInput {
            path: output.to_path_buf(),
        });
    }
    if output.exists() && !overwrite {
        return Err(Error::OutputExists {
            path: output.to_path_buf(),
        });
    }
    Ok(())
}

/// The metadata written into the output's `__metadata__`.
fn metadata(
    ckpt: &Checkpoint,
    sha: Option<&str>,
    opts: &Settings,
    plan: &Plan,
) -> BTreeMap<String, String> {
    let a = &opts.adapt;
    let mut info = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model": opts.model,
        "tag": opts.tag,
        "source_format": ckpt.format(),
        "state_key": ckpt.state_key(),
        "in_chans": a.in_chans,
        "base_chans": plan.report.base_chans,
        "num_classes": a.num_classes,
        "first_conv": a.first_conv,
        "classifier": a.classifier,
        "dtype": a.dtype.map(DType::name),
        "adapted": plan.report.adapted,
        "img_size": a.resize.as_ref().and_then(|r| r.img_size),
        "patch_size": a.resize.as_ref().and_then(|r| r.patch_size),
        "window_size": a.resize.as_ref().and_then(|r| r.window_size),
        "resampled": plan.report.resampled,
        "global_pool": a.global_pool.as_ref().map(|(p, _)| p),
        "renamed": plan.report.renamed,
        "dropped": plan.report.dropped,
    });
    if let (Some(applied), Some(fields)) = (&plan.report.original_layout, info.as_object_mut()) {
        // only when there was one: the metadata of other conversions stays as it was
        fields.insert(
            "original_layout".to_owned(),
            serde_json::to_value(applied).unwrap_or_default(),
        );
    }
    let mut meta = BTreeMap::from([
        ("format".to_owned(), "pt".to_owned()),
        ("timmconv".to_owned(), info.to_string()),
    ]);
    if let Some(applied) = &plan.report.original_layout {
        // what a reader audits first: which original layout was converted, and what it held
        meta.insert("layout".to_owned(), applied.to_string());
    }
    if let Some(sha) = sha {
        meta.insert("source_sha256".to_owned(), sha.to_owned());
    } else if let Some((size, mtime)) = ckpt
        .file()
        .and_then(|f| f.metadata().ok())
        .and_then(|m| source_stamp(&m))
    {
        // without a hash, what says which input this came from (`batch --no-hash` compares it)
        meta.insert("source_size".to_owned(), size.to_string());
        meta.insert("source_mtime_ns".to_owned(), mtime.to_string());
    }
    meta.insert("options_sha256".to_owned(), options_fingerprint(opts));
    meta
}

/// An input's size and modification time (nanoseconds since the epoch), as recorded in the
/// metadata of outputs converted without hashing.
pub fn source_stamp(m: &std::fs::Metadata) -> Option<(u64, u128)> {
    let mtime = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some((m.len(), mtime))
}

/// SHA-256 of everything in `opts` that shapes the output's tensors (not `overwrite`, `sync`,
/// `expect_sha256` or `no_hash`), with the timmconv version: `batch` skips an existing output
/// only when this matches, so a changed flag or a new timmconv converts again.
pub(crate) fn options_fingerprint(opts: &Settings) -> String {
    let mut text = format!(
        "{}\n{:?}\n{:?}\n{:?}\n{:?}",
        env!("CARGO_PKG_VERSION"),
        opts.open,
        opts.adapt,
        opts.model,
        opts.tag
    );
    // what decides the original-layout conversion shapes the tensors too; the default adds
    // nothing, so fingerprints of conversions that never choose stay as they were
    if opts.original != crate::conversion::OriginalLayoutChoice::Auto || opts.model_keys.is_some() {
        text.push_str(&format!("\n{:?}\n{:?}", opts.original, opts.model_keys));
    }
    sha256_hex(text.as_bytes())
}

/// Hex SHA-256 of a file, read in blocks (nothing of it stays resident).
pub fn sha256_file(path: &Path) -> Result<String> {
    // a regular file only: a FIFO named as an input would block the hash forever
    let f = crate::small_file::open_existing(path)?;
    sha256_open_file(&f, path, &mut CrcFeed::none())
}

/// Hex SHA-256 of an open file, read with positioned reads from its start (the file's own
/// offset is left alone, so other readers of the same handle are undisturbed). The same
/// buffers go to `crc`, which checks the CRC-32 of every stored zip member they cover.
fn sha256_open_file(f: &std::fs::File, path: &Path, crc: &mut CrcFeed<'_>) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0u64;
    loop {
        let n = match crate::fileio::read_at(f, &mut buf, off) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        crc.feed(off as usize, &buf[..n])
            .map_err(|e| e.with_path(path))?;
        off += n as u64;
    }
    Ok(hex(&h.finalize()))
}

fn check_sha(input: &Path, sha: &str, opts: &Settings) -> Result<Option<String>> {
    let expected = opts
        .expect_sha256
        .clone()
        .map(|e| (e.to_ascii_lowercase(), "--expect-sha256"))
        .or_else(|| hash_in_file_name(input).map(|h| (h, "the hash in the file name")));
    // both are 8 to 64 hex digits: --expect-sha256 is checked before any work, and
    // hash_in_file_name only matches such names
    let Some((want, source)) = expected else {
        return Ok(None);
    };
    if !sha.starts_with(&want) {
        return Err(Error::Checksum {
            path: input.to_path_buf(),
            actual: sha.to_owned(),
            expected: format!("{want} ({source})"),
        });
    }
    Ok(Some(source.to_owned()))
}

/// A SHA-256 placeholder of the right length, replaced once the hash is known.
const SHA_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Writes `plan` of `ckpt` (opened from `input`) into a safetensors file at `output`.
/// `progress` receives `(bytes_done, bytes_total)` after each piece.
///
/// The input is hashed on a second thread while the tensors are written; the header's
/// `source_sha256` is filled in at the end, and a checksum mismatch removes the output.
pub(crate) fn write_file(
    input: &Path,
    ckpt: &Checkpoint,
    opts: &Settings,
    plan: Plan,
    output: &Path,
    write_opts: &WriteOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ConvertReport> {
    check_output(input, output, write_opts.overwrite)?;
    let entries: Vec<Entry> = plan
        .tensors
        .iter()
        .map(|p| Entry {
            name: p.name.clone(),
            dtype: p.dtype,
            shape: p.shape.clone(),
        })
        .collect();
    // refuse an output no reader could open before any work (names, header size)
    write::validate(&entries)?;
    let total: u64 = plan.tensors.iter().map(|p| p.nbytes() as u64).sum();
    let draft = metadata(
        ckpt,
        (!opts.no_hash).then_some(SHA_PLACEHOLDER),
        opts,
        &plan,
    );
    let mut done = 0u64;
    let mut scratch = crate::adapt::Scratch::default();
    let mut sha = String::new();
    let mut checked = None;
    std::thread::scope(|scope| {
        let hasher = scope.spawn(|| {
            let sha = match (opts.no_hash, ckpt.file()) {
                (true, _) => String::new(),
                // hash the file that was opened and checked, not whatever the path names now;
                // the same reads check every stored zip member's CRC-32
                (false, Some(f)) => sha256_open_file(f, input, &mut ckpt.crc_feed())?,
                (false, None) => sha256_file(input)?,
            };
            if opts.check_crc {
                // what the reads above did not check: all of it without a hash
                ckpt.check_crc()?;
            }
            Ok::<_, Error>(sha)
        });
        write::write_safetensors(
            output,
            &entries,
            &draft,
            write_opts.overwrite,
            write_opts.fsync,
            |i, sink| {
                plan.write_tensor(ckpt, &plan.tensors[i], &mut scratch, sink)
                    .map_err(|e| e.with_path(input))
            },
            |n| {
                done += n;
                progress(done, total);
            },
            || {
                sha = hasher
                    .join()
                    .map_err(|_| Error::Structure("the hashing thread panicked".into()))??;
                if opts.no_hash {
                    return Ok(metadata(ckpt, None, opts, &plan));
                }
                checked = check_sha(input, &sha, opts)?;
                Ok(metadata(ckpt, Some(&sha), opts, &plan))
            },
        )
    })?;
    Ok(ConvertReport {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        format: ckpt.format(),
        state_key: ckpt.state_key().map(str::to_owned),
        source_sha256: sha,
        sha256_checked: checked,
        tensors: plan.tensors.len(),
        bytes: total,
        skipped: ckpt.skipped().to_vec(),
        plan: plan.report,
    })
}
