//! One regression test per class of issue 21 (the fourth attack pass), named after the bug it
//! pins. FIFOs and device nodes are made inside temporary folders only: no test ever points
//! timmconv at a path under /dev (as root, a rename over /dev/null replaces it machine-wide).
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, fixture, s, stderr};

/// Runs timmconv with `env`, killed after 60 s: a test of "refused at once" must not hang.
fn run_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("TIMMCONV_REGISTRY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run timmconv");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("timmconv {args:?} hung (killed after 60 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

fn mkfifo(p: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
}

/// A character device with /dev/null's numbers (1, 3), made in a temporary folder; `false`
/// where this process may not make one (not root).
fn mknod_null(p: &Path) -> bool {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .is_ok()
}

fn resnet() -> PathBuf {
    fixture("ckpt/test_resnet.f32.safetensors")
}

fn file_type(p: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(p).unwrap().file_type()
}

/// Class 7: `--force` replaced a FIFO, a device node and links to them (as root it replaced
/// /dev/null). Now anything but a regular file is refused, with or without `--force`, the error
/// says what is there, and it is left as it was.
#[test]
fn force_never_replaces_a_fifo_a_device_or_a_link() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.safetensors");
    mkfifo(&fifo);
    let link = dir.path().join("link.safetensors");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let dangling = dir.path().join("dangling.safetensors");
    std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
    let null = dir.path().join("null");
    let mut cases = vec![
        (&fifo, "a FIFO"),
        (&link, "a symbolic link to"),
        (&dangling, "does not exist"),
    ];
    let have_device = mknod_null(&null);
    if have_device {
        cases.push((&null, "a character device"));
    }
    let input = resnet();
    for (out, says) in cases {
        let before = file_type(out);
        for force in [true, false] {
            let mut args = vec!["convert", s(&input), "-o", s(out)];
            if force {
                args.push("--force");
            }
            let o = run(&args);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{}: {}",
                out.display(),
                stderr(&o)
            );
            let err = stderr(&o);
            assert!(err.contains(says), "{err}");
            assert!(err.contains("only ever replaces a regular file"), "{err}");
            assert_eq!(file_type(out), before, "{} changed", out.display());
        }
    }
    assert!(file_type(&fifo).is_fifo());
    if have_device {
        assert!(file_type(&null).is_char_device());
    }
    // the hub layout: a FIFO where its folder goes is refused the same way
    let o = run(&[
        "convert",
        s(&resnet()),
        "--model",
        "resnet18",
        "--layout",
        "hub",
        "-o",
        s(&fifo),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("a FIFO"), "{}", stderr(&o));
    // a chart goes through the same check
    let o = run(&["models", "vit_tiny*", "--plot", s(&fifo)]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(file_type(&fifo).is_fifo());
    // only timmconv's output is left beside them: nothing else was written
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".timmconv"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// Class 5: a hub folder's `config.json` (and `--registry FILE`) was read without a file-type
/// or size check: a FIFO hung forever, a link to /dev/zero ate gigabytes.
#[test]
fn hub_folder_config_and_registry_must_be_small_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("repo");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(resnet(), folder.join("model.safetensors")).unwrap();
    let config = folder.join("config.json");
    mkfifo(&config);
    let out = dir.path().join("out.safetensors");
    let o = run(&["convert", s(&folder), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is a FIFO, not a regular file"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(&config).unwrap();
    // a file over MAX_CONFIG_BYTES (16 MiB) is refused by its size, unread
    let big = std::fs::File::create(&config).unwrap();
    big.set_len((16 << 20) + 1).unwrap();
    let o = run(&["inspect", s(&folder)]);
    let o = if o.status.code() == Some(0) {
        run(&["convert", s(&folder), "-o", s(&out)])
    } else {
        o
    };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAX_CONFIG_BYTES"), "{}", stderr(&o));
    assert!(!out.exists());
    // the registry file: by flag and by environment
    let reg = dir.path().join("registry.jsonl");
    mkfifo(&reg);
    let o = run(&["--registry", s(&reg), "models", "resnet18"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("a FIFO"), "{}", stderr(&o));
    let o = run_env(&["models", "resnet18"], &[("TIMMCONV_REGISTRY", &reg)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("a FIFO"), "{}", stderr(&o));
    std::fs::remove_file(&reg).unwrap();
    std::fs::File::create(&reg)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let o = run(&["--registry", s(&reg), "models", "resnet18"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAX_REGISTRY_BYTES"), "{}", stderr(&o));
}

/// Class 6: the Hugging Face cache's `refs/REVISION` was read the same way: a FIFO hung, a link
/// to /dev/zero read 2.1 GB and then said "not in the cache".
#[test]
fn hf_cache_refs_must_be_a_small_regular_file() {
    let cache = tempfile::tempdir().unwrap();
    let refs = cache.path().join("models--org--repo").join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    let main = refs.join("main");
    mkfifo(&main);
    let out = cache.path().join("out.safetensors");
    let args = ["convert", "hf-hub:org/repo", "-o", s(&out)];
    let o = run_env(&args, &[("HF_HUB_CACHE", cache.path())]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is a FIFO, not a regular file"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(&main).unwrap();
    std::fs::File::create(&main)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let o = run_env(&args, &[("HF_HUB_CACHE", cache.path())]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAX_REF_BYTES"), "{}", stderr(&o));
    assert!(!out.exists());
}

fn vit() -> PathBuf {
    fixture("ckpt/test_vit.f32.zip.pth")
}

/// Writes a safetensors file of float32 zeros with these tensors.
fn safetensors_of(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, shape)| {
            (
                (*n).to_owned(),
                vec![0u8; 4 * shape.iter().product::<usize>()],
                shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, bytes, shape)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap();
            (n.clone(), v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Class 1: `--img-size` and `--patch-size` were each bounded, their combination was not:
/// `--img-size 4096 --patch-size 1` asked for a 16 Mi-token position embedding (12.9 GB on
/// vit_tiny, exit 134). Now every tensor a resampling produces is checked against
/// MAX_ADAPTED_TENSOR_BYTES while planning, before anything is read.
#[test]
fn img_size_and_patch_size_together_cannot_size_a_huge_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let start = Instant::now();
    let o = run(&[
        "convert",
        s(&vit()),
        "--model",
        "vit_tiny_patch16_224",
        "--allow-mismatch",
        "--img-size",
        "4096",
        "--patch-size",
        "1",
        "-o",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("MAX_ADAPTED_TENSOR_BYTES"), "{err}");
    assert!(err.contains("[1, 16777217, 64]"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!out.exists());
}

/// Class 2: with `--allow-mismatch` and a resolution flag, the checkpoint's own patch kernel
/// (here 128×128) sized an old·old pseudo-inverse matrix (16 Ki × 16 Ki; 256×256 needed 17 GB).
/// The kernel's sides are now held to MAX_PATCH_SIZE like the flag's, and the matrix to
/// MAX_PINV_ELEMENTS.
#[test]
fn checkpoint_patch_kernel_cannot_size_the_pseudo_inverse() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("kernel.safetensors");
    safetensors_of(&input, &[("patch_embed.proj.weight", vec![1, 1, 128, 128])]);
    let out = dir.path().join("out.safetensors");
    let start = Instant::now();
    let o = run(&[
        "convert",
        s(&input),
        "--model",
        "vit_tiny_patch16_224",
        "--allow-mismatch",
        "--patch-size",
        "8",
        "-o",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAX_PATCH_SIZE"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(20));
    // a kernel within MAX_PATCH_SIZE whose matrix is not: 64×64 to 48×48 is 9.4 Mi elements
    safetensors_of(&input, &[("patch_embed.proj.weight", vec![1, 1, 64, 64])]);
    let o = run(&[
        "convert",
        s(&input),
        "--model",
        "vit_tiny_patch16_224",
        "--allow-mismatch",
        "--patch-size",
        "48",
        "-o",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAX_PINV_ELEMENTS"), "{}", stderr(&o));
    assert!(!out.exists());
}

/// Class 3: `--in-chans` had no upper bound (1 000 000 aborted on a 12.5 GB allocation; 100 000
/// succeeded at 2.46 GB). It is now held to MAX_IN_CHANS, and any adapted tensor to
/// MAX_ADAPTED_TENSOR_BYTES.
#[test]
fn in_chans_is_bounded_before_the_kernel_is_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    for n in ["1000000", "100000", "1025"] {
        let o = run(&[
            "convert",
            s(&vit()),
            "--model",
            "vit_tiny_patch16_224",
            "--allow-mismatch",
            "--in-chans",
            n,
            "-o",
            s(&out),
        ]);
        assert_eq!(o.status.code(), Some(2), "{n}: {}", stderr(&o));
        assert!(stderr(&o).contains("MAX_IN_CHANS"), "{}", stderr(&o));
    }
    let o = run(&[
        "convert",
        s(&vit()),
        "--model",
        "vit_tiny_patch16_224",
        "--allow-mismatch",
        "--in-chans",
        "1024",
        "-o",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Class 4: safetensors inputs skipped the budgets a `.pth` has: a 76 MB header of 1.04 M
/// tensors cost 1.1 GB and 31 s in `inspect`. Its entries are now counted, without building
/// them, against MAX_SAFETENSORS_TENSORS (the `.pth` storage budget) before it is parsed.
#[test]
fn safetensors_with_a_million_tensors_is_refused_before_parsing() {
    let n = timmconv::checkpoint::MAX_SAFETENSORS_TENSORS + 1;
    let mut header = String::from("{");
    for i in 0..n {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}"#,
            4 * i,
            4 * i + 4
        ));
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + 4 * n, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let err = timmconv::Checkpoint::open(&path, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err.root(),
            timmconv::Error::Limit {
                name: "MAX_SAFETENSORS_TENSORS",
                ..
            }
        ),
        "{err}"
    );
    let o = run(&["inspect", s(&path)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("MAX_SAFETENSORS_TENSORS"),
        "{}",
        stderr(&o)
    );
    // one fewer is read as before
    let small = dir.path().join("ok.safetensors");
    safetensors_of(&small, &[("a", vec![2]), ("b", vec![3])]);
    assert_eq!(
        timmconv::Checkpoint::open(&small, &Default::default())
            .unwrap()
            .tensors()
            .len(),
        2
    );
}

/// A manifest of `lines` in `dir`, with `in.safetensors` (the resnet fixture) beside it.
fn manifest(dir: &Path, lines: &[String]) -> PathBuf {
    std::fs::copy(resnet(), dir.join("in.safetensors")).unwrap();
    let m = dir.join("manifest.jsonl");
    std::fs::write(&m, lines.join("\n") + "\n").unwrap();
    m
}

fn job(output: &str, args: &[&str]) -> String {
    serde_json::json!({"input": "in.safetensors", "output": output, "args": args}).to_string()
}

fn report(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Class 8: batch compared outputs as raw strings: `out` and `sub/../out`, or a path through a
/// linked folder, were two jobs writing one file. Outputs are now compared by identity (the
/// device and inode of the folder, and the name).
#[test]
fn batch_refuses_two_spellings_of_one_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("sub", dir.path().join("linked")).unwrap();
    for (a, b) in [
        ("out.safetensors", "sub/../out.safetensors"),
        ("sub/o.safetensors", "linked/o.safetensors"),
        ("new/../o.safetensors", "./o.safetensors"),
    ] {
        let m = manifest(dir.path(), &[job(a, &[]), job(b, &[])]);
        let o = run(&["batch", s(&m)]);
        assert_eq!(o.status.code(), Some(2), "{a} {b}: {}", stderr(&o));
        assert!(stderr(&o).contains("is also line 1's"), "{}", stderr(&o));
    }
    assert!(!dir.path().join("out.safetensors").exists());
    // distinct files are fine
    let m = manifest(
        dir.path(),
        &[job("a.safetensors", &[]), job("sub/a.safetensors", &[])],
    );
    let o = run(&["batch", s(&m)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Class 9: batch "skipped" an output truncated after its header as current, on every run.
/// Current now means readable: the header valid and the file as long as it says.
#[test]
fn batch_reconverts_a_truncated_output() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), &[job("out.safetensors", &[])]);
    let rep = dir.path().join("report.jsonl");
    let out = dir.path().join("out.safetensors");
    for _ in 0..2 {
        let o = run(&["batch", s(&m), "--report", s(&rep)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let full = std::fs::metadata(&out).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&out)
        .unwrap()
        .set_len(full / 2)
        .unwrap();
    let w = timmconv::write::read_written(&out).unwrap();
    assert!(!w.complete && w.metadata.contains_key("options_sha256"));
    let o = run(&["batch", s(&m), "--report", s(&rep)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let statuses: Vec<_> = report(&rep)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["converted", "skipped", "converted"]);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), full);
    assert!(timmconv::write::read_written(&out).unwrap().complete);
}

/// Class 10: manifest lines and arguments had no size limit (a 30 MB `--rename` pattern
/// aborted; a 1 M-line manifest spent 35 s and 693 MB) and `SLURM_ARRAY_TASK_MAX = 2^64 - 1`
/// wrapped the shard count. Lines, jobs and the file are now bounded by named limits, and the
/// count is checked arithmetic.
#[test]
fn batch_manifest_size_and_slurm_count_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{}=b", "a".repeat(70 << 10));
    let m = manifest(dir.path(), &[job("out.safetensors", &["--rename", &long])]);
    let o = run(&["batch", s(&m)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("MAX_MANIFEST_LINE_BYTES"),
        "{}",
        stderr(&o)
    );
    let many: Vec<String> = (0..100_001)
        .map(|i| job(&format!("o{i}.safetensors"), &[]))
        .collect();
    let m = manifest(dir.path(), &many);
    let start = Instant::now();
    let o = run(&["batch", s(&m)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAX_MANIFEST_JOBS"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(50));
    let fifo = dir.path().join("fifo.jsonl");
    mkfifo(&fifo);
    let o = run(&["batch", s(&fifo)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("a FIFO"), "{}", stderr(&o));
    let m = manifest(dir.path(), &[job("out.safetensors", &[])]);
    let o = run_env(
        &["batch", s(&m)],
        &[
            ("SLURM_ARRAY_TASK_ID", Path::new("0")),
            ("SLURM_ARRAY_TASK_MAX", Path::new("18446744073709551615")),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("overflow"), "{}", stderr(&o));
    assert!(!dir.path().join("out.safetensors").exists());
}

/// Issue 22 item 6: a failed job is an `error:` (exit 1); `--shard I/N` with another
/// `--shard-count` is refused; a misspelt flag in a manifest gets convert's "similar argument"
/// tip; `bytes_read` is what the job read (the hash of a skipped job's input, nothing for a job
/// that failed before reading); the Slurm note reads as docs/batch.md shows it.
#[test]
fn batch_reports_failures_shards_and_bytes_truthfully() {
    let dir = tempfile::tempdir().unwrap();
    let size = std::fs::metadata(resnet()).unwrap().len();
    let missing =
        serde_json::json!({"input": "missing.pth", "output": "m.safetensors"}).to_string();
    let m = manifest(dir.path(), &[job("out.safetensors", &[]), missing]);
    let rep = dir.path().join("report.jsonl");
    for _ in 0..2 {
        let o = run(&["batch", s(&m), "--report", s(&rep)]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("error: line 2:"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("warning: line 2"), "{}", stderr(&o));
    }
    let rows = report(&rep);
    let bytes = |status: &str| -> Vec<u64> {
        rows.iter()
            .filter(|r| r["status"] == status)
            .map(|r| r["bytes_read"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(bytes("converted"), [size]);
    assert_eq!(bytes("skipped"), [size], "the skipped job hashed its input");
    assert_eq!(bytes("failed"), [0, 0], "the failed job read nothing");
    let o = run(&["batch", s(&m), "--no-hash", "--report", s(&rep)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let o = run(&["batch", s(&m), "--shard", "0/2", "--shard-count", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--shard-count says 3"),
        "{}",
        stderr(&o)
    );

    let typo = manifest(dir.path(), &[job("t.safetensors", &["--in-chan", "4"])]);
    let o = run(&["batch", s(&typo)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("'--in-chans'"), "{}", stderr(&o));

    let good = manifest(dir.path(), &[job("out.safetensors", &[])]);
    let o = run(&["batch", s(&good), "--shard", "0/1"]);
    assert!(stderr(&o).contains("shard 0/1 (--shard)"), "{}", stderr(&o));
    let o = run_env(
        &["batch", s(&good)],
        &[
            ("SLURM_ARRAY_TASK_ID", Path::new("3")),
            ("SLURM_ARRAY_TASK_COUNT", Path::new("8")),
        ],
    );
    let docs = std::fs::read_to_string(common::root().join("docs/batch.md")).unwrap();
    let note = "shard 3/8 (SLURM_ARRAY_TASK_ID 3 of SLURM_ARRAY_TASK_COUNT 8)";
    assert!(stderr(&o).contains(note), "{}", stderr(&o));
    assert!(docs.contains(note), "docs/batch.md does not show {note}");
}

/// Found in the fifth pass: one job's output named as another job's input (in either order)
/// made what the second job reads depend on the order the jobs happen to run in (and on which
/// machine a shard ran); and a manifest's paths were printed raw, so an escape sequence in an
/// output name could rewrite the terminal.
#[test]
fn batch_never_reads_what_it_writes_and_prints_paths_escaped() {
    let dir = tempfile::tempdir().unwrap();
    for lines in [
        [job("mid.safetensors", &[]), serde_json::json!({"input": "mid.safetensors", "output": "last.safetensors"}).to_string()],
        [serde_json::json!({"input": "x.safetensors", "output": "in.safetensors", "args": ["--force"]}).to_string(), job("z.safetensors", &[])],
    ] {
        let m = manifest(dir.path(), &lines);
        let o = run(&["batch", s(&m)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("one batch never reads what it writes"), "{}", stderr(&o));
    }
    let evil = "a\u{1b}[2Jb.safetensors";
    let m = manifest(dir.path(), &[job(evil, &[]), job(evil, &[])]);
    let o = run(&["batch", s(&m)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains('\u{1b}'), "{}", stderr(&o));
    assert!(stderr(&o).contains(r"a\u{1b}[2Jb"), "{}", stderr(&o));
}

/// Found in the fifth pass: `batch --report FIFO` blocked forever in the open (before any job
/// ran), and a report path naming a device was appended to. The report is an output: a regular
/// file only, and neither a job's output nor the manifest. (And `sha256_file`, which batch uses to check an output is current, opened its
/// input without the regular-file check every other reader has: an output
/// recording the same settings, checked against a FIFO input, is stale at once.)
#[test]
fn batch_report_must_be_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), &[job("out.safetensors", &[])]);
    let fifo = dir.path().join("report.jsonl");
    mkfifo(&fifo);
    let o = run(&["batch", s(&m), "--report", s(&fifo)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("a FIFO"), "{}", stderr(&o));
    assert!(!dir.path().join("out.safetensors").exists());
    // a report appended to an output (or to the manifest) would corrupt it
    for report in [dir.path().join("sub/../out.safetensors"), m.clone()] {
        let o = run(&["batch", s(&m), "--report", s(&report)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--report"), "{}", stderr(&o));
    }
    assert!(!dir.path().join("out.safetensors").exists());
    let out = dir.path().join("ours.safetensors");
    timmconv::Conversion::from_file(common::fixture("ckpt/test_resnet.f32.zip.pth"))
        .plan()
        .unwrap()
        .write(&out, &Default::default())
        .unwrap();
    let state = timmconv::Conversion::from_file(&fifo)
        .output_state(&out)
        .state;
    assert_eq!(state, timmconv::conversion::OutputState::Stale);
}

/// Found in the fifth pass: `batch --jobs` had no upper bound; 3 000 conversions at once took
/// 1.7 GB and ran past two minutes on 2 cores (and a thread each). It is held to
/// MAX_PARALLEL_JOBS, refused before any job starts.
#[test]
fn batch_jobs_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), &[job("out.safetensors", &[])]);
    let o = run(&["batch", s(&m), "--jobs", "100000"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAX_PARALLEL_JOBS"), "{}", stderr(&o));
    assert!(!dir.path().join("out.safetensors").exists());
    let o = run(&["batch", s(&m), "--jobs", "256"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Found in the fifth pass: class 4's count skipped `__metadata__`, whose entries the
/// safetensors crate and the reader then built as strings: 7 million one-character entries in
/// an 83 MB header cost 1.6 GB and 92 s. They are counted too, against
/// MAX_SAFETENSORS_METADATA_ENTRIES.
#[test]
fn safetensors_metadata_entries_are_counted_before_parsing() {
    let n = timmconv::checkpoint::MAX_SAFETENSORS_METADATA_ENTRIES + 1;
    let meta: Vec<String> = (0..n).map(|i| format!(r#""{i:x}":"""#)).collect();
    let mut header = format!(
        r#"{{"__metadata__":{{{}}},"a":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#,
        meta.join(",")
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 4]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let err = timmconv::Checkpoint::open(&path, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err.root(),
            timmconv::Error::Limit {
                name: "MAX_SAFETENSORS_METADATA_ENTRIES",
                ..
            }
        ),
        "{err}"
    );
    // batch's read-back goes through the same count
    assert!(timmconv::write::read_written(&path).is_err());
}

/// Found in the fifth pass: converting a hub folder with `-o FOLDER/config.json --force`
/// replaced the folder's own config.json (part of the input) with the converted weights; the
/// "never modifies its input" check only compared the weights file.
#[test]
fn output_is_never_the_inputs_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::copy(resnet(), repo.join("model.safetensors")).unwrap();
    std::fs::write(repo.join("config.json"), "{}").unwrap();
    let out = dir.path().join("repo/../repo/config.json");
    let o = run(&["convert", s(&repo), "-o", s(&out), "--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("never modifies its input"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("config.json")).unwrap(),
        "{}"
    );
}
