//! Inputs and outputs the CLI resolves before converting: output paths refused with what to do,
//! hub names parsed and looked up in a Hugging Face cache laid out as huggingface_hub does.

use std::path::Path;
use std::process::Command;

use timmconv::source::{self, HubId};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/ckpt/test_resnet.f32.zip.pth"
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
