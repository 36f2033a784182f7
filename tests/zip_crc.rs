//! A byte flipped inside a stored zip member (issue #27, item 6): torch.load and, before, timmconv
//! read it without a word; Python's `zipfile.ZipFile.testzip()` names the member. Every path that
//! reads the member's bytes anyway must refuse it naming the member, leaving no output; the path
//! that never reads them (a conversion without hashing, tensors copied by the kernel) passes
//! unless asked to check (docs/security.md). tests/python/test_zip_crc.py checks that Python
//! names the same member.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{fixture, run, s, stderr};
use timmconv::{Checkpoint, Conversion, Error, OpenOptions, WriteOptions};

/// A torch.save archive with stored members (its members' local headers carry their sizes).
const INPUT: &str = "ckpt/test_resnet.f32.zip.pth";
/// The tensor whose bytes are flipped: the first weight, a whole storage of its own.
const TENSOR: &str = "conv1.0.weight";

/// One member as its local header describes it.
struct Member {
    name: String,
    crc: u32,
    data: std::ops::Range<usize>,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The archive's members, from the central directory (torch writes data descriptors, so its
/// local headers carry no sizes) and each local header (where the data starts).
fn members(bytes: &[u8]) -> Vec<Member> {
    let mut out = Vec::new();
    let mut at = (0..bytes.len() - 4)
        .find(|&i| &bytes[i..i + 4] == b"PK\x01\x02")
        .expect("a central directory");
    while bytes.get(at..at + 4) == Some(b"PK\x01\x02") {
        let (n, m, k) = (
            u16_at(bytes, at + 28),
            u16_at(bytes, at + 30),
            u16_at(bytes, at + 32),
        );
        let local = u32_at(bytes, at + 42) as usize;
        let start = local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28);
        let len = u32_at(bytes, at + 20) as usize;
        out.push(Member {
            name: String::from_utf8(bytes[at + 46..at + 46 + n].to_vec()).unwrap(),
            crc: u32_at(bytes, at + 16),
            data: start..start + len,
        });
        at += 46 + n + m + k;
    }
    out
}

/// A copy of the fixture in `dir` with one byte of `TENSOR` flipped, the member that holds it
/// and the flipped offset.
fn flipped(dir: &Path) -> (PathBuf, Member, usize) {
    let input = fixture(INPUT);
    let ckpt = Checkpoint::open(&input, &OpenOptions::default()).unwrap();
    let range = ckpt
        .tensor_file_range(ckpt.tensor(TENSOR).unwrap())
        .expect("stored contiguously");
    let mut bytes = std::fs::read(&input).unwrap();
    let at = range.start + range.len() / 2;
    let member = members(&bytes)
        .into_iter()
        .find(|m| m.data.contains(&at))
        .expect("a member holds the tensor");
    // the tensor is its storage: converting it copies the whole member
    assert_eq!(member.data, range, "{}", member.name);
    assert!(member.name.ends_with("/data/0"), "{}", member.name);
    bytes[at] ^= 0x01;
    let path = dir.join("flipped.pth");
    std::fs::write(&path, &bytes).unwrap();
    (path, member, at)
}

/// Exit 2 with a message naming the file, the member and the CRC-32 check.
fn assert_refused(o: &Output, file: &Path, member: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(s(file)), "{err}");
    assert!(
        err.contains(&format!("zip member `{member}` fails its CRC-32 check")),
        "{err}"
    );
}

/// Only the input is left in `dir`: no output, no staged file.
fn assert_only_input(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["flipped.pth"]);
}

#[test]
fn hashing_convert_refuses_a_flipped_byte_naming_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let (input, member, _) = flipped(dir.path());
    let out = dir.path().join("out.safetensors");
    // conv1.0.weight is copied by the kernel: only the hashing read sees its bytes
    let o = run(&["convert", s(&input), "-o", s(&out), "-q"]);
    assert_refused(&o, &input, &member.name);
    assert_only_input(dir.path());
}

#[test]
fn inspect_scan_refuses_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (input, member, _) = flipped(dir.path());
    let o = run(&["inspect", "--scan", s(&input)]);
    assert_refused(&o, &input, &member.name);
    let o = run(&["inspect", "--scan", "--json", s(&input)]);
    assert_refused(&o, &input, &member.name);
}

#[test]
fn no_hash_kernel_copy_misses_it_unless_check_crc_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (input, member, _) = flipped(dir.path());
    let out = dir.path().join("out.safetensors");
    // the documented limitation: the bytes go file to file in the kernel, never read here
    let o = run(&["convert", s(&input), "-o", s(&out), "-q", "--no-hash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(&out).unwrap();
    let o = run(&[
        "convert",
        s(&input),
        "-o",
        s(&out),
        "-q",
        "--no-hash",
        "--check-crc",
    ]);
    assert_refused(&o, &input, &member.name);
    assert_only_input(dir.path());
}

#[test]
fn no_hash_reads_through_this_process_check_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let (input, member, _) = flipped(dir.path());
    let out = dir.path().join("out.safetensors");
    // a cast reads the tensor in pieces, in order; an adapted stem reads it whole
    for extra in [
        &["--dtype", "f16"][..],
        &["--model", "test_resnet", "--in-chans", "1"][..],
    ] {
        let mut args = vec!["convert", s(&input), "-o", s(&out), "-q", "--no-hash"];
        args.extend(extra);
        let o = run(&args);
        assert_refused(&o, &input, &member.name);
        assert_only_input(dir.path());
    }
}

#[test]
fn an_unflipped_file_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(INPUT);
    let o = run(&["inspect", "--scan", s(&input)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (i, extra) in [&[][..], &["--no-hash", "--check-crc"], &["--check-crc"]]
        .into_iter()
        .enumerate()
    {
        let out = dir.path().join(format!("out{i}.safetensors"));
        let mut args = vec!["convert", s(&input), "-o", s(&out), "-q"];
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{:?}: {}", extra, stderr(&o));
    }
    let ckpt = Checkpoint::open(&input, &OpenOptions::default()).unwrap();
    ckpt.check_crc().unwrap();
    for name in ["views.zip.pth", "views.deflated.pth"] {
        let ckpt = Checkpoint::open(fixture(&format!("ckpt/{name}")), &Default::default()).unwrap();
        ckpt.check_crc().unwrap();
    }
}

/// The typed error: the member, the CRC-32 its header records and that of the flipped bytes.
fn assert_crc_error(e: &Error, member: &Member, actual: u32) {
    match e.root() {
        Error::ZipCrc {
            member: name,
            expected,
            actual: got,
        } => {
            assert_eq!(name, &member.name);
            assert_eq!(*expected, member.crc);
            assert_eq!(*got, actual);
        }
        other => panic!("expected Error::ZipCrc, got {other}"),
    }
}

#[test]
fn the_library_names_the_member_with_both_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let (input, member, _) = flipped(dir.path());
    let bytes = std::fs::read(&input).unwrap();
    let actual = crc32fast::hash(&bytes[member.data.clone()]);
    assert_ne!(actual, member.crc);
    // opening reads the pickle only, which is intact
    let ckpt = Checkpoint::open(&input, &OpenOptions::default()).unwrap();
    assert_crc_error(&ckpt.check_crc().unwrap_err(), &member, actual);
    // reading the tensor whole through the mapping checks its member
    let ckpt = Checkpoint::open(&input, &OpenOptions::default()).unwrap();
    assert_crc_error(&ckpt.array::<f32>(TENSOR).unwrap_err(), &member, actual);
    let e = timmconv::checkpoint::scan_file(&input).unwrap_err();
    assert_crc_error(&e, &member, actual);

    let out = dir.path().join("out.safetensors");
    let write = |c: Conversion| c.plan().unwrap().write(&out, &WriteOptions::default());
    let e = write(Conversion::from_file(&input)).unwrap_err();
    assert_crc_error(&e, &member, actual);
    assert_only_input(dir.path());
    let e = write(
        Conversion::from_file(&input)
            .hash_input(false)
            .check_crc(true),
    )
    .unwrap_err();
    assert_crc_error(&e, &member, actual);
    assert_only_input(dir.path());
    // without hashing or the check, the kernel's copy passes the flipped byte on
    write(Conversion::from_file(&input).hash_input(false)).unwrap();
}

#[test]
fn a_deflated_member_is_checked_when_inflated() {
    // the central directory's CRC-32 of the first deflated storage altered: inflating it, as
    // any read of its tensors does, finds the difference
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("ckpt/views.deflated.pth")).unwrap();
    let target = members(&bytes)
        .into_iter()
        .find(|m| m.name.ends_with("/data/0"))
        .unwrap();
    let central = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x01\x02")
        .map(|(i, _)| i)
        .find(|&i| {
            let n = u16_at(&bytes, i + 28);
            bytes[i + 46..i + 46 + n] == *target.name.as_bytes()
        })
        .unwrap();
    bytes[central + 16] ^= 0x01;
    let path = dir.path().join("flipped.pth");
    std::fs::write(&path, &bytes).unwrap();
    let expected = Member {
        crc: target.crc ^ 0x01,
        ..target
    };
    let ckpt = Checkpoint::open(&path, &OpenOptions::default()).unwrap();
    let e = ckpt
        .tensors()
        .iter()
        .filter(|t| t.storage == "0")
        .map(|t| ckpt.tensor_bytes(t).map(|_| ()))
        .find_map(Result::err)
        .expect("a tensor of storage 0 fails");
    // the bytes give what the local header still records
    let actual = expected.crc ^ 0x01;
    assert_crc_error(&e, &expected, actual);
    let ckpt = Checkpoint::open(&path, &OpenOptions::default()).unwrap();
    assert_crc_error(&ckpt.check_crc().unwrap_err(), &expected, actual);
    let o = run(&["inspect", "--scan", s(&path)]);
    assert_refused(&o, &path, &expected.name);
}
