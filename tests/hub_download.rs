//! `hf-hub:` names: downloaded by the real hf-hub client over a real socket from a small HTTP
//! server on 127.0.0.1 that answers like the Hub (`/ORG/REPO/resolve/REV/FILE`, one-byte range
//! probes, X-Repo-Commit and ETag headers), into the cache layout huggingface_hub uses; then read
//! from that cache offline. The expected tensors are those of converting the same fixture by
//! path (itself checked against timm 1.0.31 in tests/convert.rs).
#![cfg(feature = "hub-download")]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::{bin, fixture};
use timmconv::convert::sha256_hex;
use timmconv::{Checkpoint, OpenOptions};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "hf_test_token";

/// One logged request: method, path, Range header, Authorization header.
type Log = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A hub: repo id -> (revision -> commit), files by name.
struct Hub {
    repos: HashMap<String, HashMap<String, Vec<u8>>>,
    etag_override: Option<String>,
}

fn serve(hub: Hub) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let hub = Arc::new(hub);
    let l = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (hub, log) = (hub.clone(), l.clone());
            std::thread::spawn(move || handle(stream, &hub, &log));
        }
    });
    (addr, log)
}

fn handle(mut stream: TcpStream, hub: &Hub, log: &Log) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let range = headers.get("range").cloned().unwrap_or_default();
    log.lock().unwrap().push((
        method.to_owned(),
        path.to_owned(),
        range.clone(),
        headers.get("authorization").cloned().unwrap_or_default(),
    ));
    // /ORG/REPO/resolve/REV/FILE
    let found = path.split_once("/resolve/").and_then(|(repo, rest)| {
        let (rev, file) = rest.split_once('/')?;
        let files = hub.repos.get(repo.trim_start_matches('/'))?;
        (rev == "main" || rev == "v1" || rev == COMMIT)
            .then(|| files.get(file))
            .flatten()
    });
    let Some(body) = found else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let size = body.len();
    let start = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    let end = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split('-').nth(1))
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(size - 1);
    let etag = hub
        .etag_override
        .clone()
        .unwrap_or_else(|| sha256_hex(body));
    let (status, slice, extra) = match start {
        Some(s) => (
            "206 Partial Content",
            &body[s..=end],
            format!("Content-Range: bytes {s}-{end}/{size}\r\n"),
        ),
        None => ("200 OK", &body[..], String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Repo-Commit: {COMMIT}\r\nETag: \"{etag}\"\r\n{extra}Connection: close\r\n\r\n",
        slice.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(slice);
    }
    let _ = reader.read(&mut [0u8; 0]);
}

fn timmconv(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args);
    for k in [
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HOME",
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_OFFLINE",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c.output().expect("run timmconv")
}

fn tensors(path: &Path) -> Vec<(String, Vec<usize>, String)> {
    let ckpt = Checkpoint::open(path, &OpenOptions::default()).unwrap();
    ckpt.tensors()
        .iter()
        .map(|t| {
            let bytes = ckpt.tensor_bytes(t).unwrap();
            (t.name.clone(), t.shape.clone(), sha256_hex(&bytes))
        })
        .collect()
}

const CONFIG: &str = r#"{"architecture": "test_resnet", "num_classes": 1000, "num_features": 256,
  "pretrained_cfg": {"tag": "r160_in1k", "input_size": [3, 160, 160], "num_classes": 1000,
  "first_conv": "conv1.0", "classifier": "fc"}}"#;

fn resnet_hub() -> Hub {
    let bin = std::fs::read(fixture("ckpt/test_resnet.f32.zip.pth")).unwrap();
    let st = std::fs::read(fixture("ckpt/test_resnet.f32.safetensors")).unwrap();
    Hub {
        repos: HashMap::from([
            (
                "org/tiny-bin".to_owned(),
                HashMap::from([
                    ("pytorch_model.bin".to_owned(), bin),
                    ("config.json".to_owned(), CONFIG.as_bytes().to_vec()),
                ]),
            ),
            (
                "org/tiny-both".to_owned(),
                HashMap::from([
                    ("model.safetensors".to_owned(), st),
                    ("pytorch_model.bin".to_owned(), b"not read".to_vec()),
                ]),
            ),
        ]),
        etag_override: None,
    }
}

#[test]
fn hub_name_downloads_into_the_shared_cache_then_converts_offline() {
    let (endpoint, log) = serve(resnet_hub());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let cache_s = cache.to_str().unwrap();
    let out = dir.path().join("out.safetensors");
    let env = [
        ("HF_HUB_CACHE", cache_s),
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_TOKEN", TOKEN),
    ];
    // no --model: config.json names test_resnet and its first conv
    let o = timmconv(
        &[
            "convert",
            "hf-hub:org/tiny-bin",
            "-o",
            out.to_str().unwrap(),
            "--in-chans",
            "4",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // huggingface_hub's layout: refs/main -> commit, snapshots/COMMIT/FILE -> blobs/ETAG
    let repo = cache.join("models--org--tiny-bin");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let snap = repo.join("snapshots").join(COMMIT);
    let original = std::fs::read(fixture("ckpt/test_resnet.f32.zip.pth")).unwrap();
    assert_eq!(
        std::fs::read(snap.join("pytorch_model.bin")).unwrap(),
        original
    );
    assert!(repo.join("blobs").join(sha256_hex(&original)).is_file());
    assert_eq!(
        std::fs::read(snap.join("config.json")).unwrap(),
        CONFIG.as_bytes()
    );
    // model.safetensors was asked for first (timm's preference), and the token was sent
    let reqs = log.lock().unwrap().clone();
    let first = reqs.first().unwrap();
    assert_eq!(first.1, "/org/tiny-bin/resolve/main/model.safetensors");
    assert!(
        reqs.iter().all(|r| r.3 == format!("Bearer {TOKEN}")),
        "{reqs:?}"
    );

    // the same as converting the file by path with the cfg of test_resnet.r160_in1k
    let by_path = dir.path().join("by_path.safetensors");
    let o = timmconv(
        &[
            "convert",
            fixture("ckpt/test_resnet.f32.zip.pth").to_str().unwrap(),
            "-o",
            by_path.to_str().unwrap(),
            "--model",
            "test_resnet.r160_in1k",
            "--in-chans",
            "4",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = tensors(&by_path);
    assert_eq!(tensors(&out), want);
    let stem = want.iter().find(|t| t.0 == "conv1.0.weight").unwrap();
    assert_eq!(stem.1[1], 4);

    // offline, with a dead endpoint: read from the cache, same result
    let before = log.lock().unwrap().len();
    let again = dir.path().join("again.safetensors");
    let o = timmconv(
        &[
            "convert",
            "hf-hub:org/tiny-bin@main",
            "-o",
            again.to_str().unwrap(),
            "--in-chans",
            "4",
        ],
        &[
            ("HF_HUB_CACHE", cache_s),
            ("HF_HUB_OFFLINE", "1"),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tensors(&again), want);
    // by commit too, and the cache is used without asking the server even when online
    let o = timmconv(
        &[
            "inspect",
            "--json",
            &format!("hf-hub:org/tiny-bin@{COMMIT}"),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "torch_zip");
    assert_eq!(log.lock().unwrap().len(), before);
}

#[test]
fn safetensors_is_preferred_over_pytorch_model_bin() {
    let (endpoint, log) = serve(resnet_hub());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let o = timmconv(
        &["inspect", "--json", "hf-hub:org/tiny-both@v1"],
        &[
            ("HF_HUB_CACHE", cache.to_str().unwrap()),
            ("HF_ENDPOINT", endpoint.as_str()),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "safe_tensors");
    let repo = cache.join("models--org--tiny-both");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/v1")).unwrap(),
        COMMIT
    );
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .all(|r| !r.1.ends_with("pytorch_model.bin")));
    assert!(!repo
        .join("snapshots")
        .join(COMMIT)
        .join("pytorch_model.bin")
        .exists());
}

#[test]
fn missing_repo_offline_cache_and_hostile_etag_are_errors() {
    let (endpoint, _) = serve(resnet_hub());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let cache_s = cache.to_str().unwrap();
    let out = dir.path().join("o.safetensors");
    let run = |name: &str, env: &[(&str, &str)]| {
        let o = timmconv(&["convert", name, "-o", out.to_str().unwrap()], env);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(!out.exists());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(
        "hf-hub:org/absent",
        &[("HF_HUB_CACHE", cache_s), ("HF_ENDPOINT", &endpoint)],
    );
    assert!(
        e.contains("neither model.safetensors nor pytorch_model.bin"),
        "{e}"
    );
    let e = run(
        "hf-hub:org/tiny-bin",
        &[("HF_HUB_CACHE", cache_s), ("HF_HUB_OFFLINE", "1")],
    );
    assert!(e.contains("not in the Hugging Face cache"), "{e}");
    assert!(e.contains("HF_HUB_OFFLINE"), "{e}");
    let e = run("hf-hub:../etc", &[("HF_HUB_CACHE", cache_s)]);
    assert!(e.contains("not a repo id"), "{e}");

    // an ETag that would put the blob outside the cache is refused before anything is written
    let mut hub = resnet_hub();
    hub.etag_override = Some("../../../escape".into());
    let (evil, _) = serve(hub);
    let e = run(
        "hf-hub:org/tiny-bin",
        &[("HF_HUB_CACHE", cache_s), ("HF_ENDPOINT", &evil)],
    );
    assert!(e.contains("is not a blob name"), "{e}");
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn a_folder_with_a_hub_layout_is_read_as_local_dir() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::copy(
        fixture("ckpt/test_resnet.f32.zip.pth"),
        repo.join("pytorch_model.bin"),
    )
    .unwrap();
    std::fs::write(repo.join("config.json"), CONFIG).unwrap();
    let out = dir.path().join("o.safetensors");
    // the bare folder is refused at once, with the prefix to use
    let o = timmconv(
        &[
            "convert",
            repo.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("local-dir:"));
    let o = timmconv(
        &[
            "convert",
            &format!("local-dir:{}", repo.display()),
            "-o",
            out.to_str().unwrap(),
            "--num-classes",
            "0",
            "--json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // config.json's classifier `fc` was dropped for num_classes 0
    let names: Vec<String> = tensors(&out).into_iter().map(|t| t.0).collect();
    assert!(names.iter().all(|n| !n.starts_with("fc.")), "{names:?}");
    assert!(names.iter().any(|n| n == "conv1.0.weight"));
}
