#![no_main]
//! Structure-aware fuzzing: pickles generated from a grammar of opcodes (shared references
//! through the memo, nesting, calls, globals from a list that mixes allowed, harmless and
//! dangerous ones), packed bare, as legacy streams, or in zips with name tricks (case,
//! duplicates, folders, deflate). Properties:
//!
//! - nothing panics, and opening and converting stay within their budgets (libFuzzer's
//!   `-rss_limit_mb` and `-timeout` catch bombs and hangs);
//! - **the scan fails closed**: when `scan` says safe, no dangerous or unknown global was
//!   emitted, before its STOP, in any pickle of the file that torch could run.

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use timmconv::{Checkpoint, OpenOptions};

const GLOBALS: &[(&str, &str, bool)] = &[
    ("collections", "OrderedDict", false),
    ("torch._utils", "_rebuild_tensor_v2", false),
    ("torch", "FloatStorage", false),
    ("torch._tensor", "_rebuild_from_type_v2", false),
    ("argparse", "Namespace", false),
    ("posix", "system", true),
    ("builtins", "eval", true),
    ("builtins", "getattr", true),
    ("subprocess", "Popen", true),
    ("my.module", "Thing", true),
    ("Collections", "OrderedDict", true),
];

#[derive(Debug, Arbitrary)]
enum Op {
    None,
    Int(i32),
    Str(u8),
    EmptyList,
    EmptyDict,
    EmptyTuple,
    Mark,
    Tuple,
    Tuple2,
    List,
    Dict,
    Appends,
    SetItems,
    SetItem,
    Global(u8),
    StackGlobal(u8),
    Reduce,
    Build,
    Put(u8),
    Get(u8),
    Memoize,
    BinPersId,
    Dup,
    Pop,
    Stop,
    Junk(u8),
}

#[derive(Debug, Arbitrary)]
enum Container {
    Bare,
    Legacy,
    Zip {
        name: u8,
        deflate: bool,
        decoy: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    ops: Vec<Op>,
    container: Container,
}

/// The pickle's bytes, and whether a dangerous global comes before its first STOP.
fn emit(ops: &[Op]) -> (Vec<u8>, bool) {
    let mut b = vec![0x80, 4];
    let mut dangerous = false;
    let mut stopped = false;
    // a junk byte may be an opcode that swallows what follows (a text line, a length), so the
    // ops after it need not be read as emitted: the ground truth stops there
    let mut synced = true;
    for op in ops {
        match op {
            Op::None => b.push(b'N'),
            Op::Int(i) => {
                b.push(b'J');
                b.extend_from_slice(&i.to_le_bytes());
            }
            Op::Str(n) => {
                let s = format!("k{n}");
                b.push(0x8c);
                b.push(s.len() as u8);
                b.extend_from_slice(s.as_bytes());
            }
            Op::EmptyList => b.push(b']'),
            Op::EmptyDict => b.push(b'}'),
            Op::EmptyTuple => b.push(b')'),
            Op::Mark => b.push(b'('),
            Op::Tuple => b.push(b't'),
            Op::Tuple2 => b.push(0x86),
            Op::List => b.push(b'l'),
            Op::Dict => b.push(b'd'),
            Op::Appends => b.push(b'e'),
            Op::SetItems => b.push(b'u'),
            Op::SetItem => b.push(b's'),
            Op::Global(g) | Op::StackGlobal(g) => {
                let (m, n, bad) = GLOBALS[*g as usize % GLOBALS.len()];
                if matches!(op, Op::Global(_)) {
                    b.push(b'c');
                    b.extend_from_slice(format!("{m}\n{n}\n").as_bytes());
                } else {
                    for s in [m, n] {
                        b.push(0x8c);
                        b.push(s.len() as u8);
                        b.extend_from_slice(s.as_bytes());
                    }
                    b.push(0x93);
                }
                if bad && !stopped && synced {
                    dangerous = true;
                }
            }
            Op::Reduce => b.push(b'R'),
            Op::Build => b.push(b'b'),
            Op::Put(k) => b.extend_from_slice(&[b'q', *k]),
            Op::Get(k) => b.extend_from_slice(&[b'h', *k]),
            Op::Memoize => b.push(0x94),
            Op::BinPersId => b.push(b'Q'),
            Op::Dup => b.push(b'2'),
            Op::Pop => b.push(b'0'),
            Op::Stop => {
                b.push(b'.');
                stopped = true;
            }
            Op::Junk(x) => {
                b.push(*x);
                synced = false;
            }
        }
    }
    b.push(b'.');
    (b, dangerous)
}

/// The archive, and whether its last member (the generated pickle) made it in: the zip crate's
/// writer refuses a name twice.
fn zip_file(members: &[(String, Vec<u8>)], deflate: bool) -> (Vec<u8>, bool) {
    let mut last_written = false;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, data) in members {
            last_written = z.start_file(name.as_str(), opts).is_ok() && z.write_all(data).is_ok();
        }
        let _ = z.finish();
    }
    (buf.into_inner(), last_written)
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let (pickle, mut dangerous) = emit(&input.ops);
    let bytes = match &input.container {
        Container::Bare => pickle,
        Container::Legacy => {
            // magic, version, sys_info, then the generated pickle as the object
            let mut b = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
            b.extend_from_slice(b"\x80\x02M\xe9\x03.");
            b.extend_from_slice(b"\x80\x02}.");
            b.extend_from_slice(&pickle);
            b
        }
        Container::Zip {
            name,
            deflate,
            decoy,
        } => {
            let pkl = ["archive/data.pkl", "archive/DATA.PKL", "archive/data.pkl ", "other/data.pkl", "archive/x/data.pkl"]
                [*name as usize % 5];
            // torch reads `data.pkl` under the first member's folder, ignoring case; the scan reads
            // every `.pkl` member; a member of another name is read by neither
            if !pkl.to_ascii_lowercase().ends_with(".pkl") {
                dangerous = false;
            }
            let mut members = vec![("archive/version".to_string(), b"3\n".to_vec())];
            if *decoy {
                members.push(("archive/data.pkl".into(), b"\x80\x02}.".to_vec()));
            }
            members.push((pkl.to_string(), pickle));
            let (zip, written) = zip_file(&members, *deflate);
            dangerous &= written;
            zip
        }
    };
    if let Ok(scan) = timmconv::checkpoint::scan(&bytes) {
        if scan.is_safe() {
            assert!(
                !dangerous,
                "scan said safe but a dangerous global precedes STOP: {:?}",
                input
            );
        }
    }
    if let Ok(c) = Checkpoint::from_bytes(bytes, &OpenOptions::default()) {
        for t in c.tensors() {
            let _ = c.tensor_bytes(t);
        }
    }
});
