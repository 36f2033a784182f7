//! Output-path and input-kind errors say what to do, exit 2, write nothing, never name the
//! temporary file, and never block on a FIFO.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, fixture};

fn convert(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut child = Command::new(bin())
        .arg("convert")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(["--model", "test_resnet.r160_in1k", "-q"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run timmconv");
    // a FIFO must be refused at once, not waited on
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("timmconv blocked on {}", input.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn refused(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        !e.contains(timmconv::write::TEMP_PREFIX),
        "names the temp file: {e}"
    );
    e
}

#[test]
fn output_path_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = fixture("ckpt/test_resnet.f32.zip.pth");
    let missing = dir.path().join("no/such/out.safetensors");
    let e = refused(&convert(&ckpt, &missing, &[]));
    assert!(e.contains("does not exist; create it first"), "{e}");
    assert!(!dir.path().join("no").exists());
    let e = refused(&convert(&ckpt, &missing, &["--layout", "hub"]));
    assert!(e.contains("create it first"), "{e}");

    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    for force in [&[][..], &["--force"][..]] {
        let e = refused(&convert(&ckpt, &folder, force));
        assert!(e.contains("is a folder; give a file name"), "{e}");
        assert!(e.contains("--layout hub"), "{e}");
    }
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
}

#[cfg(unix)]
#[test]
fn fifos_and_folders_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = dir.path().join("out.safetensors");
    let e = refused(&convert(&fifo, &out, &[]));
    assert!(e.contains("not a regular file"), "{e}");
    let e = refused(&convert(dir.path(), &out, &[]));
    assert!(e.contains("is a folder"), "{e}");
    assert!(!out.exists());
    // nor is a FIFO replaced as an output, even with --force
    let ckpt = fixture("ckpt/test_resnet.f32.zip.pth");
    let e = refused(&convert(&ckpt, &fifo, &["--force"]));
    assert!(e.contains("FIFO"), "{e}");
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&kind));
}
