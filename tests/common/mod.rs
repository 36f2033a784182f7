//! Helpers shared by the integration tests. Expected values come from the JSON files that
//! tools/make_fixtures.py wrote from torch 2.11.0 and timm 1.0.31.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's top folder: the tests belong to the CLI package in `cli/`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (name, dtype, shape, sha256) rows of an expected tensor list.
pub fn rows(v: &serde_json::Value) -> Vec<(String, String, Vec<usize>, String)> {
    v.as_array()
        .expect("tensor list")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
                r[2].as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
                r[3].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_timmconv"))
}

/// Every `<name>.json` under `fixtures/<dir>`, as (name, parsed JSON), sorted by name.
pub fn expected_files(dir: &str) -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<_> = std::fs::read_dir(fixture(dir))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(".json")
                .to_owned();
            (name, json(&path))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the timmconv binary with `args`.
pub fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .args(args)
        .output()
        .expect("run timmconv")
}

/// A run's standard error, as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
