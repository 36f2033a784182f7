//! Interruption and faults: a convert killed with SIGKILL at random moments never leaves a partial
//! file at the destination, and a full disk is a clear error with no output.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin;
use timmconv::write::{write_safetensors, Chunk, Entry, TEMP_PREFIX};
use timmconv::DType;

/// A safetensors input of about `mb` MiB of f32 data in 16 tensors.
fn big_input(path: &Path, mb: usize) {
    let per = mb * (1 << 20) / 16 / 4;
    let entries: Vec<Entry> = (0..16)
        .map(|i| Entry {
            name: format!("blocks.{i}.weight"),
            dtype: DType::F32,
            shape: vec![per],
        })
        .collect();
    let data: Vec<u8> = (0..per)
        .flat_map(|i| (i as f32 * 1e-3).to_le_bytes())
        .collect();
    write_safetensors(
        path,
        &entries,
        &Default::default(),
        true,
        false,
        |_, sink| sink(Chunk::Bytes(data.as_slice().into())),
        |_| {},
        || Ok(Default::default()),
    )
    .unwrap();
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_never_leaves_a_partial_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.safetensors");
    big_input(&input, 96);
    let dest = tmp.path().join("out.safetensors");
    let convert = |force: bool| {
        let mut c = Command::new(bin());
        c.args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            dest.to_str().unwrap(),
            "--dtype",
            "bf16",
            "-q",
        ]);
        if force {
            c.arg("--force");
        }
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    // a complete earlier output, and how long a warm conversion takes at best (the shortest of
    // three: a loaded machine only makes later runs slower, so kills land inside a run)
    assert!(convert(false).status().unwrap().success());
    let full = (0..3)
        .map(|_| {
            let start = Instant::now();
            assert!(convert(true).status().unwrap().success());
            start.elapsed()
        })
        .min()
        .unwrap();
    let complete = std::fs::read(&dest).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut killed = 0;
    // trials go on until KILLS of them killed a running conversion (or MAX_TRIALS ran)
    const KILLS: usize = 16;
    const MAX_TRIALS: usize = 64;
    for trial in 0..MAX_TRIALS {
        if killed == KILLS {
            break;
        }
        // odd trials start with no destination, even ones with a complete earlier output
        if trial % 2 == 1 {
            let _ = std::fs::remove_file(&dest);
        } else if !dest.exists() {
            std::fs::write(&dest, &complete).unwrap();
        }
        let mut child = convert(true).spawn().unwrap();
        let delay =
            Duration::from_micros(xorshift(&mut seed) % (full.as_micros() as u64 * 9 / 10 + 1));
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        match std::fs::read(&dest) {
            Ok(bytes) => assert!(
                bytes == complete,
                "trial {trial}: destination is neither absent nor complete"
            ),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "trial {trial}");
                assert!(
                    trial % 2 == 1,
                    "trial {trial}: the earlier complete file vanished"
                );
            }
        }
        // leftovers of a killed run are named as such and are never the destination
        for entry in std::fs::read_dir(tmp.path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                name == "in.safetensors"
                    || name == "out.safetensors"
                    || name.starts_with(TEMP_PREFIX),
                "{name}"
            );
        }
    }
    assert!(
        killed == KILLS,
        "only {killed} of {MAX_TRIALS} trials killed a running conversion"
    );
}

#[test]
fn a_full_disk_is_a_clear_error_with_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.safetensors");
    big_input(&input, 16);
    let dest = tmp.path().join("out.safetensors");
    // ulimit -f makes writes past 4 MiB fail with EFBIG, as a full disk fails with ENOSPC;
    // SIGXFSZ is ignored so that the write returns the error instead of killing the process
    let script = format!(
        "trap '' XFSZ; ulimit -f 4096; exec '{}' convert '{}' -o '{}'",
        bin().display(),
        input.display(),
        dest.display()
    );
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("out.safetensors") && err.to_lowercase().contains("too large"),
        "{err}"
    );
    assert!(!dest.exists());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "temporary file left behind: {left:?}");
}

/// An input shortened by another process at random moments of its conversion (inputs are read
/// through maps, docs/security.md): each run either finishes with the whole output (it had read
/// everything already) or exits 2 with a message, never dies of a signal, and never leaves an
/// output behind. Runs alternate hashing (the hash touches the mapped pages itself: the
/// command's SIGBUS handler speaks) and `--no-hash` (the mapped copy's write fails instead).
#[cfg(target_os = "linux")]
#[test]
fn an_input_shortened_while_read_is_an_error_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine.safetensors");
    big_input(&pristine, 64);
    let input = tmp.path().join("in.safetensors");
    let dest = tmp.path().join("out.safetensors");
    let size = std::fs::metadata(&pristine).unwrap().len();
    let convert = |hash: bool| {
        let mut c = Command::new(bin());
        c.args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            dest.to_str().unwrap(),
            "-q",
        ]);
        if !hash {
            c.arg("--no-hash");
        }
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c
    };
    std::fs::copy(&pristine, &input).unwrap();
    let full = (0..3)
        .map(|_| {
            let _ = std::fs::remove_file(&dest);
            let start = Instant::now();
            assert!(convert(true).status().unwrap().success());
            start.elapsed()
        })
        .min()
        .unwrap();
    // the tensors' bytes (the header records the copy's modification time, which differs)
    let tensors = |bytes: &[u8]| {
        bytes[8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize..].to_vec()
    };
    let complete = tensors(&std::fs::read(&dest).unwrap());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut failed, mut shortened, mut signalled) = (0, 0, 0);
    // trials go on until FAILURES of them were cut short (or MAX_TRIALS ran)
    const FAILURES: usize = 12;
    const MAX_TRIALS: usize = 96;
    for trial in 0..MAX_TRIALS {
        if failed == FAILURES {
            break;
        }
        let _ = std::fs::remove_file(&dest);
        std::fs::copy(&pristine, &input).unwrap();
        let hash = trial % 2 == 0;
        let child = convert(hash).spawn().unwrap();
        let delay =
            Duration::from_micros(xorshift(&mut seed) % (full.as_micros() as u64 * 9 / 10 + 1));
        std::thread::sleep(delay);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .unwrap()
            .set_len(size / 3)
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        match o.status.code() {
            Some(0) => assert!(
                tensors(&std::fs::read(&dest).unwrap()) == complete,
                "trial {trial}: a successful run wrote other tensor bytes"
            ),
            Some(2) => {
                failed += 1;
                shortened += usize::from(err.contains("shortened"));
                signalled += usize::from(err.contains("SIGBUS"));
                assert!(err.starts_with("error: "), "trial {trial}: {err}");
                assert!(!dest.exists(), "trial {trial}: an output after {err}");
            }
            code => panic!(
                "trial {trial} (hash {hash}): exit {code:?} ({:?}): {err}",
                o.status
            ),
        }
        for entry in std::fs::read_dir(tmp.path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                ["pristine.safetensors", "in.safetensors", "out.safetensors"]
                    .contains(&name.as_str()),
                "trial {trial}: {name} left behind"
            );
        }
    }
    assert!(
        failed == FAILURES,
        "only {failed} of {MAX_TRIALS} trials were cut short by the truncation"
    );
    eprintln!("{failed} runs cut short: {shortened} saying the input was shortened, {signalled} of them by SIGBUS");
    // the truncation landed inside the mapped reads at least once, not only in the parse
    assert!(shortened > 0, "no run reported its input shortened");
}
