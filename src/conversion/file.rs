//! The safetensors-file target: the plan written into one file while the input is hashed on a
//! second thread, the header's metadata completed once the hash is known.

use std::path::Path;

use super::record::{self, ConvertReport};
use super::{ConversionPlan, WriteOptions};
use crate::error::{Error, Result};
use crate::write::{self, Entry};

/// A SHA-256 placeholder of the right length, replaced once the hash is known.
const SHA_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Writes `plan` into a safetensors file at `output`. `progress` receives `(bytes_done,
/// bytes_total)` after each piece.
///
/// The input is hashed on a second thread while the tensors are written; the header's
/// `source_sha256` is filled in at the end, and a checksum mismatch removes the output.
pub(super) fn write_file(
    plan: ConversionPlan,
    output: &Path,
    write_opts: &WriteOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ConvertReport> {
    let ConversionPlan {
        input,
        ckpt,
        settings: opts,
        plan,
        ..
    } = plan;
    let (input, ckpt, opts) = (input.as_path(), &ckpt, &opts);
    super::output::check_file(input, output, write_opts.overwrite)?;
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
    let draft = record::metadata(
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
            match (opts.no_hash, ckpt.file()) {
                (true, _) => Ok(String::new()),
                // hash the file that was opened and checked, not whatever the path names now
                (false, Some(f)) => record::sha256_open_file(f, input),
                (false, None) => record::sha256_file(input),
            }
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
                    return Ok(record::metadata(ckpt, None, opts, &plan));
                }
                checked = record::check_sha(input, &sha, opts)?;
                Ok(record::metadata(ckpt, Some(&sha), opts, &plan))
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
