//! The safetensors-file target: the plan written into one file while the input is hashed on a
//! second thread, the header's metadata completed once the hash is known.

use std::path::Path;

use super::input::Origin;
use super::record::{self, ConvertReport};
use super::{ChecksumSource, ConversionPlan, WriteOptions};
use crate::adapt::Plan;
use crate::checkpoint::Checkpoint;
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
    let (input, ckpt, opts) = (&input, &ckpt, &opts);
    super::output::check_file(input.path(), output, write_opts.overwrite)?;
    let entries = entries(&plan)?;
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
            let sha = match opts.no_hash {
                true => String::new(),
                false => input.sha256(ckpt)?,
            };
            if opts.check_crc {
                // what the reads above did not check: all of it without a hash
                ckpt.check_crc().map_err(|e| input.attach(e))?;
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
                    .map_err(|e| input.attach(e))
            },
            |n| {
                done += n;
                progress(done, total);
            },
            || {
                sha = hasher
                    .join()
                    .map_err(|_| Error::Internal("the hashing thread panicked".into()))??;
                if opts.no_hash {
                    return Ok(record::metadata(ckpt, None, opts, &plan));
                }
                checked = record::check_sha(input, &sha, opts)?;
                Ok(record::metadata(ckpt, Some(&sha), opts, &plan))
            },
        )
    })?;
    let mut report = report(input, ckpt, plan, sha, checked);
    report.output = Some(output.to_path_buf());
    Ok(report)
}

/// The output's tensors as the header lists them, refused before any work when no reader
/// could open them (names, header size).
fn entries(plan: &crate::adapt::Plan) -> Result<Vec<Entry>> {
    let entries: Vec<Entry> = plan
        .tensors
        .iter()
        .map(|p| Entry {
            name: p.name.clone(),
            dtype: p.dtype,
            shape: p.shape.clone(),
        })
        .collect();
    write::validate(&entries)?;
    Ok(entries)
}

/// Writes `plan` as safetensors bytes to `sink`, in order: the input is hashed first (so the
/// header is final before its first byte goes out, and a checksum mismatch writes nothing),
/// then the header, then every tensor. A tensor stored in a file is read through a buffer.
pub(super) fn write_stream(
    plan: ConversionPlan,
    sink: &mut dyn std::io::Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ConvertReport> {
    let ConversionPlan {
        input,
        ckpt,
        settings: opts,
        plan,
        ..
    } = plan;
    let entries = entries(&plan)?;
    let total: u64 = plan.tensors.iter().map(|p| p.nbytes() as u64).sum();
    let (sha, checked) = if opts.no_hash {
        (String::new(), None)
    } else {
        let sha = input.sha256(&ckpt)?;
        if opts.check_crc {
            ckpt.check_crc().map_err(|e| input.attach(e))?;
        }
        let checked = record::check_sha(&input, &sha, &opts)?;
        (sha, checked)
    };
    let metadata = record::metadata(&ckpt, (!opts.no_hash).then_some(sha.as_str()), &opts, &plan);
    let stream_err = |e: std::io::Error| Error::io(super::input::STREAM, e);
    let order = write::reference_order(&entries);
    let header = write::header(&entries, &order, &metadata)?;
    sink.write_all(&(header.len() as u64).to_le_bytes())
        .and_then(|()| sink.write_all(&header))
        .map_err(stream_err)?;
    let mut done = 0u64;
    let mut scratch = crate::adapt::Scratch::default();
    let mut buf = Vec::new();
    for i in order {
        let mut put = |chunk: write::Chunk<'_>| -> Result<()> {
            let n = match chunk {
                write::Chunk::Bytes(b) => {
                    sink.write_all(&b).map_err(stream_err)?;
                    b.len() as u64
                }
                write::Chunk::FileRange { file, offset, len } => {
                    copy_to(file, offset, len, &mut buf, sink)
                        .map_err(|e| input.attach(Error::io(input.name(), e)))?;
                    len
                }
            };
            done += n;
            progress(done, total);
            Ok(())
        };
        plan.write_tensor(&ckpt, &plan.tensors[i], &mut scratch, &mut put)
            .map_err(|e| input.attach(e))?;
    }
    sink.flush().map_err(stream_err)?;
    Ok(report(&input, &ckpt, plan, sha, checked))
}

/// What writing `plan` of `ckpt` did, the output's place left for the writer to fill in.
fn report(
    input: &Origin,
    ckpt: &Checkpoint,
    plan: Plan,
    sha: String,
    checked: Option<ChecksumSource>,
) -> ConvertReport {
    ConvertReport {
        input: input.path().map(Path::to_path_buf),
        output: None,
        format: ckpt.format(),
        state_key: ckpt.state_key().map(str::to_owned),
        source_sha256: sha,
        sha256_checked: checked,
        tensors: plan.tensors.len(),
        bytes: plan.tensors.iter().map(|p| p.nbytes() as u64).sum(),
        skipped: ckpt.skipped().to_vec(),
        changes: plan.report,
    }
}

/// Copies `len` bytes at `offset` of `file` to `sink` through `buf` (at most 4 MiB).
fn copy_to(
    file: &std::fs::File,
    mut offset: u64,
    len: u64,
    buf: &mut Vec<u8>,
    sink: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let end = offset + len;
    buf.resize((4 << 20).min(usize::try_from(len).unwrap_or(usize::MAX)), 0);
    while offset < end {
        let n = buf
            .len()
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        crate::fileio::read_exact_at(file, &mut buf[..n], offset)?;
        sink.write_all(&buf[..n])?;
        offset += n as u64;
    }
    Ok(())
}
