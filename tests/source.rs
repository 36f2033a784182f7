//! Inputs and outputs the CLI resolves before converting: output paths refused with what to do,
//! hub names parsed and looked up in a Hugging Face cache laid out as huggingface_hub does.

use std::path::Path;
use std::process::Command;

use timmconv::source::{self, HubId};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/ckpt/test_resnet.f32.zip.pth"
);

fn convert(output: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_timmconv"))
        .args(["convert", FIXTURE, "-o"])
        .arg(output)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn output_errors_say_what_to_do_and_never_name_the_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let (rc, err) = convert(&dir.path().join("missing/x.safetensors"), &[]);
    assert_eq!(rc, 2);
    assert!(err.contains("does not exist; create it"), "{err}");
    let (rc, err) = convert(dir.path(), &["--force"]);
    assert_eq!(rc, 2);
    assert!(
        err.contains("give a file name") && err.contains("--layout hub"),
        "{err}"
    );
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let (rc, err) = convert(&file.join("x.safetensors"), &[]);
    assert_eq!(rc, 2);
    assert!(err.contains("is not a folder"), "{err}");
    let (rc, err) = convert(
        &file,
        &["--layout", "hub", "--model", "test_resnet", "--force"],
    );
    assert_eq!(rc, 2);
    assert!(err.contains("--layout hub writes a folder"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    // nothing was left behind
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn hub_names_parse_and_resolve_through_refs() {
    let id = HubId::parse("hf-hub:timm/resnet18.a1_in1k")
        .unwrap()
        .unwrap();
    assert_eq!(id.revision, "main");
    for bad in [
        "hf-hub:",
        "hf-hub:a",
        "hf-hub:a/b/c",
        "hf-hub:a/b@",
        "hf-hub:../b",
        "hf-hub:a/b@../x",
    ] {
        assert!(HubId::parse(bad).unwrap().is_err(), "{bad}");
    }
    assert!(HubId::parse("model.pth").is_none());

    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--org--net");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::fs::write(
        repo.join("snapshots")
            .join(commit)
            .join("pytorch_model.bin"),
        b"",
    )
    .unwrap();
    let main = HubId::parse("hf-hub:org/net").unwrap().unwrap();
    let pinned = HubId::parse(&format!("hf-hub:org/net@{commit}"))
        .unwrap()
        .unwrap();
    let other = HubId::parse("hf-hub:org/net@v2").unwrap().unwrap();
    for id in [&main, &pinned] {
        let p = source::cached(cache.path(), id, "pytorch_model.bin").unwrap();
        assert!(p.ends_with(format!("snapshots/{commit}/pytorch_model.bin")));
        assert!(source::cached(cache.path(), id, "model.safetensors").is_none());
    }
    assert!(source::snapshot(cache.path(), &other).is_none());
}

/// A hub on 127.0.0.1 that answers every request with `reply(request line)` (a whole HTTP/1.0
/// response) and records the request lines. The thread is left to die with the test process.
fn lying_hub(
    reply: impl Fn(&str) -> Vec<u8> + Send + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            log.lock().unwrap().push(first.trim().to_owned());
            let _ = stream.write_all(&reply(first.trim()));
        }
    });
    (url, seen)
}

const HUB_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.0 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Converts `hf-hub:evil/net` from `endpoint` into a fresh folder: the exit code, stderr, the
/// folder, and every file (not folder) under it afterwards.
fn convert_from(endpoint: &str) -> (i32, String, tempfile::TempDir, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_timmconv"))
        .args(["convert", "hf-hub:evil/net", "--model", "test_resnet", "-o"])
        .arg(dir.path().join("o.safetensors"))
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_HUB_CACHE", dir.path().join("cache"))
        .env("HF_HOME", dir.path().join("home"))
        .env("HF_ENDPOINT", endpoint)
        .output()
        .unwrap();
    fn files(p: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                files(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut left = Vec::new();
    files(dir.path(), &mut left);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
        left,
    )
}

#[test]
fn path_shaped_etag_from_the_hub_is_refused_before_the_cache_is_touched() {
    // regression: hf-hub 0.4.3 wrote the body to blobs/{ETag}, so `../../escape` left the cache
    let (url, _) = lying_hub(|_| {
        response(
            "200 OK",
            &[("ETag", "\"../../escape\""), ("X-Repo-Commit", HUB_COMMIT)],
            b"weights",
        )
    });
    let (rc, err, dir, left) = convert_from(&url);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("refusing the server's ETag `\"../../escape\"`"),
        "{err}"
    );
    assert!(left.is_empty(), "{left:?}");
    assert!(!dir.path().join("cache").exists());
}

#[test]
fn path_shaped_commit_from_the_hub_is_refused_before_the_cache_is_touched() {
    // regression: hf-hub 0.4.3 made snapshots/{X-Repo-Commit}, then asserted (a panic)
    let (url, _) = lying_hub(|_| {
        response(
            "200 OK",
            &[("ETag", "\"abc\""), ("X-Repo-Commit", "../../x")],
            b"weights",
        )
    });
    let (rc, err, dir, left) = convert_from(&url);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("X-Repo-Commit `../../x`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(left.is_empty(), "{left:?}");
    assert!(!dir.path().join("cache").exists());
}

#[test]
fn server_error_on_safetensors_is_not_a_reason_to_read_the_pickle() {
    // regression: any error on model.safetensors used to fall back to pytorch_model.bin
    let (url, seen) = lying_hub(|line| {
        if line.contains("model.safetensors") {
            response("500 Internal Server Error", &[], b"")
        } else {
            response(
                "200 OK",
                &[("ETag", "\"abc\""), ("X-Repo-Commit", HUB_COMMIT)],
                b"weights",
            )
        }
    });
    let (rc, err, _dir, left) = convert_from(&url);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(
        err.contains("/evil/net/resolve/main/model.safetensors"),
        "{err}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /evil/net/resolve/main/model.safetensors HTTP/1.1"]
    );
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn body_that_does_not_hash_to_its_sha256_etag_leaves_no_blob() {
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(b"weights")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (url, _) = lying_hub(move |_| {
        response(
            "200 OK",
            &[
                ("ETag", &format!("\"{sha}\"")),
                ("X-Repo-Commit", HUB_COMMIT),
            ],
            b"weightz",
        )
    });
    let (rc, err, dir, left) = convert_from(&url);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("SHA-256"), "{err}");
    assert!(left.is_empty(), "{left:?}");
    assert!(dir.path().join("cache/models--evil--net/blobs").is_dir());
}
