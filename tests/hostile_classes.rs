//! One regression test per class of attack in issue 10, on files from the hostile corpus that
//! tools/make_hostile.py generates (its MANIFEST.json records, for each, whether torch.load
//! runs its payload — proved there with a marker file). The CLI-wide sweep over every file, with
//! peak RSS and leftovers measured, is tests/python/test_hostile.py.

mod common;

use std::path::PathBuf;

use timmconv::checkpoint::scan;
use timmconv::error::Error;
use timmconv::{Checkpoint, OpenOptions};

fn hostile(name: &str) -> PathBuf {
    common::fixture(&format!("hostile/{name}"))
}

fn open_err(name: &str) -> String {
    Checkpoint::open(hostile(name), &OpenOptions::default())
        .expect_err(name)
        .to_string()
}

fn manifest() -> Vec<serde_json::Value> {
    common::json(&common::fixture("hostile/MANIFEST.json"))["files"]
        .as_array()
        .unwrap()
        .clone()
}

/// Class 1: every file whose payload torch.load runs is unsafe for the scan (finding, problem
/// or error), never "ok"; in particular a payload followed by a parse error in the same pickle.
#[test]
fn scan_never_passes_a_file_torch_would_run_code_from() {
    let mut code = 0;
    for e in manifest() {
        let name = e["file"].as_str().unwrap();
        let bytes = std::fs::read(hostile(name)).unwrap();
        if e["runs_code"].as_bool().unwrap() {
            code += 1;
            if let Ok(s) = scan(&bytes) {
                assert!(
                    !s.is_safe(),
                    "{name}: torch runs its payload, the scan says safe"
                );
            }
        }
    }
    assert!(code >= 15, "only {code} live payloads");
    let s =
        scan(&std::fs::read(hostile("legacy_p2_payload_then_junk_opcode.pth")).unwrap()).unwrap();
    assert!(s.findings.iter().any(|f| f.global == "posix.system"));
    assert!(!s.problems.is_empty(), "the unreadable rest is a problem");
}

#[test]
fn scan_reads_zip_records_as_torch_finds_them() {
    let s = scan(&std::fs::read(hostile("zip_data_PKL_uppercase.pth")).unwrap()).unwrap();
    assert!(
        s.findings.iter().any(|f| f.global == "posix.system"),
        "{s:?}"
    );
    for (file, says) in [
        ("zip_unicode_extra_rename.pth", "extra field"),
        ("zip_data_pkl_two_cases.pth", "up to case"),
        ("zip_duplicate_names.pth", "distinct names"),
        ("zip_local_header_disagrees.pth", "local header"),
        ("zip_overlapping_members.pth", "overlap"),
        ("zip_two_end_records.pth", "end-of-central-directory"),
    ] {
        let err = scan(&std::fs::read(hostile(file)).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{file}: {err}");
        assert!(open_err(file).contains(says), "{file}");
    }
    // from memory (sliced) and from a file (positioned reads) the error names what the local
    // header says
    let file = "zip_local_header_disagrees.pth";
    let err = scan(&std::fs::read(hostile(file)).unwrap()).unwrap_err();
    assert!(err.to_string().contains("\"archive/data.pkm\""), "{err}");
    assert!(
        open_err(file).contains("\"archive/data.pkm\""),
        "{}",
        open_err(file)
    );
    let tar = scan(&std::fs::read(hostile("tar_payload_storages.pth")).unwrap()).unwrap();
    assert!(!tar.is_safe());
}

/// Class 2.
#[test]
fn self_referential_rebuild_does_not_hang() {
    assert!(open_err("self_referential_rebuild.pth").contains("not a tuple"));
    assert!(open_err("deep_rebuild_chain.pth").contains("MAX_DEPTH"));
}

/// Class 3: a DAG costs its size; byte budgets refuse bombs of small objects.
#[test]
fn shared_references_and_object_bombs_are_bounded() {
    for depth in [22, 40] {
        let c = Checkpoint::open(
            hostile(&format!("dag_depth{depth}.pth")),
            &OpenOptions::default(),
        )
        .unwrap();
        assert_eq!(c.skipped().len(), 1);
    }
    for (file, limit) in [
        ("deflated_memo_bomb.pth", "MAX_PICKLE_MEMORY"),
        ("deflated_none_bomb.pth", "MAX_PICKLE_MEMORY"),
        ("deflated_object_bomb.pth", "MAX_PICKLE_MEMORY"),
        ("deflated_string_copies.pth", "MAX_STACK"),
    ] {
        let err = Checkpoint::open(hostile(file), &OpenOptions::default()).unwrap_err();
        let Error::WithPath { source, .. } = &err else {
            panic!("{file}: {err}")
        };
        assert!(
            matches!(**source, Error::Limit { name, .. } if name == limit),
            "{file}: {err}"
        );
    }
}

/// Class 4.
#[test]
fn stride_zero_views_are_limited_by_amplification() {
    for file in [
        "stride0_2p62.pth",
        "stride0_2gib.pth",
        "stride0_totals_wrap.pth",
    ] {
        assert!(open_err(file).contains("MAX_AMPLIFICATION"), "{file}");
    }
    let c = Checkpoint::open(hostile("stride0_within_limit.pth"), &OpenOptions::default()).unwrap();
    assert_eq!(c.array::<f32>("w").unwrap().shape(), [8, 4]);
    let raised = OpenOptions::default().max_amplification(1 << 40);
    let c = Checkpoint::open(hostile("stride0_2gib.pth"), &raised).unwrap();
    assert_eq!(c.total_bytes(), 1 << 31);
}

/// Class 6 (and 10): long and control-character names print, escaped, without a panic.
#[test]
fn long_and_hostile_names_print_escaped() {
    let out = std::process::Command::new(common::bin())
        .args(["inspect", hostile("name_70000_chars.pth").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(common::bin())
        .args([
            "inspect",
            "--scan",
            hostile("global_name_with_cr.pth").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!text.contains('\r') && text.contains("\\u{d}"), "{text}");
}

/// Class 7.
#[test]
fn outputs_no_reader_can_open_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let run = std::process::Command::new(common::bin())
        .args([
            "convert",
            hostile("tensor_named_metadata.pth").to_str().unwrap(),
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("__metadata__"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Class 9.
#[test]
fn storages_torch_would_read_differently_are_refused() {
    assert!(open_err("storage_two_dtypes.pth").contains("storage `0` is declared"));
    assert!(open_err("legacy_view_past_view.pth").contains("has 2 elements"));
    assert!(open_err("legacy_record_size_differs.pth").contains("declares 4"));
    assert!(open_err("legacy_view_past_root.pth").contains("exceeds its root"));
}

/// Class 10.
#[test]
fn text_integers_obey_the_long_limit() {
    assert!(open_err("text_int_digits.pth").contains("MAX_LONG_BYTES"));
    assert!(open_err("text_long_digits.pth").contains("MAX_LONG_BYTES"));
}

/// Class 1, end records: torch (miniz) follows a zip64 locator whenever one precedes the end
/// record, and takes the last end-record signature whatever its comment length says; the zip
/// crate follows the zip64 record only when the classic counts are saturated, and skips an end
/// record whose comment runs past the file, searching on backwards. Either way the two read
/// different central directories: timmconv must refuse, or read the one torch reads.
#[test]
fn scan_and_open_follow_the_end_record_torch_follows() {
    for file in [
        "zip64_locator_names_other_directory.pth",
        "zip_last_end_record_bad_comment.pth",
    ] {
        if let Ok(s) = scan(&std::fs::read(hostile(file)).unwrap()) {
            assert!(
                !s.is_safe(),
                "{file}: torch runs its payload, the scan says safe"
            );
        }
        open_err(file);
    }
}

/// Not hostile: torch 1.6-1.x named the root folder after the saved file (raw UTF-8, no zip
/// UTF-8 flag, so the zip crate decodes the name as CP437). torch loads it; so must timmconv,
/// with torch's values (4 x 0.5).
#[test]
fn non_ascii_root_without_utf8_flag_opens_like_torch() {
    let file = "zip_nonascii_root_no_utf8_flag.pth";
    let c = Checkpoint::open(hostile(file), &OpenOptions::default()).expect(file);
    let w = c.array::<f32>("w").unwrap();
    assert_eq!(w.iter().copied().collect::<Vec<_>>(), [0.5; 4]);
}

/// Third pass (red). torch.load tries Python's tarfile before anything else, and tarfile
/// accepts a header by its checksum alone: a V7 tar (no "ustar" magic) whose first member's name
/// is five tiny pickles, a ustar one whose name starts with 0x80 0x02, or one whose name starts
/// with an empty zip's `PK\x05\x06` and is followed by a harmless zip, or a valid safetensors
/// file whose first 512 bytes add up as a tar header, is torch's tar format
/// (whose `storages` member it unpickles with plain pickle.load), not a run of pickles.
#[test]
fn scan_flags_tar_archives_torch_opens_with_tarfile() {
    for file in [
        "tar_v7_header_is_five_pickles.pth",
        "tar_ustar_header_starts_as_pickle.pth",
        "tar_then_zip_end_signature_first.pth",
        "safetensors_tar_polyglot.pth",
    ] {
        if let Ok(s) = scan(&std::fs::read(hostile(file)).unwrap()) {
            assert!(
                !s.is_safe(),
                "{file}: torch runs its payload, the scan says safe"
            );
        }
        let err = open_err(file);
        assert!(err.contains("tar"), "{file}: {err}");
    }
}

/// Third pass (red). CPython's C unpickler reads a text INT with `strtol(s, base 0)`: `010` is
/// octal 8 and `0x8` is 8; a text LONG with `int(s, 0)`, which refuses `010`.
#[test]
fn text_integers_are_read_as_cpython_reads_them() {
    for file in ["text_int_octal_offset.pth", "text_int_hex_offset.pth"] {
        let c = Checkpoint::open(hostile(file), &OpenOptions::default()).expect(file);
        let w = c.array::<f32>("w").unwrap();
        assert_eq!(
            w.iter().copied().collect::<Vec<_>>(),
            [8.0, 9.0, 10.0, 11.0],
            "{file}"
        );
    }
    let err = open_err("text_long_leading_zero.pth");
    assert!(err.contains("integer"), "{err}");
}

/// Third pass (red). What torch's rebuild functions and the BUILD / SETITEM opcodes do to a
/// tensor after it is built changes the weights torch.load returns: `_rebuild_tensor_v3`'s dtype
/// argument, metadata `{'neg': True}`, a state that sets `data`, `Tensor.__setstate__` (set_),
/// `t[k] = v`. timmconv must not write the untouched tensor: it refuses, naming what.
#[test]
fn tensor_changes_torch_applies_are_refused() {
    for (file, says) in [
        ("rebuild_v3_dtype_differs.pth", "float16"),
        ("rebuild_v2_neg_metadata.pth", "metadata"),
        ("parameter_state_sets_data.pth", "`data`"),
        ("from_type_state_sets_data.pth", "`data`"),
        ("build_on_tensor_set.pth", "BUILD"),
        ("setitem_on_tensor.pth", "SETITEM"),
    ] {
        let err = open_err(file);
        assert!(err.contains(says), "{file}: {err}");
    }
    let c = Checkpoint::open(
        hostile("rebuild_v3_same_dtype.pth"),
        &OpenOptions::default(),
    )
    .expect("v3 with the storage's dtype");
    let w = c.array::<f32>("w").unwrap();
    assert_eq!(w.iter().copied().collect::<Vec<_>>(), [2.0, 3.0, 4.0]);
}

/// Third pass (red). CPython's unpickler reads a large FRAME from the file whole, so after a
/// STOP inside it torch.load reads a legacy file's next pickle from the frame's end: a scan that
/// goes on after the STOP reads decoys. A STOP before the end of its frame (pickle's writer never
/// makes one) is unreadable for the scan and refused for loading.
#[test]
fn stop_inside_a_frame_is_not_where_the_next_pickle_starts() {
    let file = "legacy_frame_hides_next_pickles.pth";
    let s = scan(&std::fs::read(hostile(file)).unwrap()).unwrap();
    assert!(!s.is_safe(), "{s:?}");
    assert!(open_err(file).contains("frame"), "{}", open_err(file));
}

/// Third pass (red). Python's raw-unicode-escape (the UNICODE opcode) reads `\u` only after an
/// odd run of backslashes: the name `w\\u0041` stays as written, it is not `w\A`.
#[test]
fn unicode_names_decode_as_python_decodes_them() {
    let c = Checkpoint::open(
        hostile("unicode_name_even_backslashes.pth"),
        &OpenOptions::default(),
    )
    .unwrap();
    assert!(c.array::<f32>(r"w\\u0041").is_ok());
}

/// Third pass (red), a false refusal. miniz reads an entry's zip64 extra field only for the
/// 32-bit values that are saturated (0xffffffff), in order; the zip crate reads all three
/// whenever the field is 24 bytes long. torch loads this archive with the 32-bit sizes (16 bytes,
/// 4 x 0.5); so must timmconv.
#[test]
fn zip64_field_is_read_only_for_saturated_values_as_miniz_does() {
    let c = Checkpoint::open(
        hostile("zip64_field_unsaturated_sizes.pth"),
        &OpenOptions::default(),
    )
    .expect("torch loads it");
    let w = c.array::<f32>("w").unwrap();
    assert_eq!(w.iter().copied().collect::<Vec<_>>(), [0.5; 4]);
}
