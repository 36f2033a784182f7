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
