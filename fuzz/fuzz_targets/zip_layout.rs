#![no_main]
//! Structure-aware fuzzing of the zip container, byte by byte: members whose raw names, Unicode
//! path extra fields (0x7075), local-header names and compression the grammar picks, in one or
//! two central directories, closed by end records that readers may resolve differently (a zip64
//! locator naming the other directory, a comment length past the end, an earlier end record,
//! two end records). Each member holds a harmless pickle or a payload (`posix.system`).
//!
//! The harness knows the ground truth because it models how torch reads the archive (miniz, as
//! `PyTorchFileReader` uses it): the last end-record signature in the last 64 KiB, its zip64
//! record when a valid locator precedes it, entry 0's folder as the root, and `data.pkl` found
//! under it ignoring ASCII case. Properties:
//!
//! - **the scan fails closed**: when `scan` says safe, the `data.pkl` torch would unpickle is no
//!   payload;
//! - nothing panics, and opening and reading every tensor stays within libFuzzer's
//!   `-rss_limit_mb` and `-timeout`.

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::io::Write;
use timmconv::{Checkpoint, OpenOptions};

const NAMES: &[&[u8]] = &[
    b"archive/data.pkl",
    b"archive/DATA.PKL",
    b"archive/byteorder",
    b"archive/version",
    b"archive/data/0",
    b"other/data.pkl",
    b"archive/extra.pkl",
    b"data.pkl",
    b"archive/data.pkl/",
    b"mod\xc3\xa8le/data.pkl",
];

/// An empty dict: a pickle torch unpickles without running anything.
const HARMLESS: &[u8] = b"\x80\x02}q\x00.";
/// `posix.system('true')`.
const PAYLOAD: &[u8] = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R.";

#[derive(Debug, Arbitrary)]
struct Member {
    name: u8,
    payload: bool,
    deflate: bool,
    /// A Unicode-path extra field naming the member otherwise.
    unicode: Option<u8>,
    /// The local header names the member otherwise.
    local: Option<u8>,
}

#[derive(Debug, Arbitrary)]
enum End {
    /// One end record, with a comment of this many bytes.
    Plain(u8),
    /// A zip64 record and locator for the directory, the classic counts saturated.
    Zip64,
    /// The classic record names the first directory, a zip64 locator the second.
    Zip64Other,
    /// The first directory's end record, 70 000 bytes of padding, then the second directory's
    /// with a comment length past the end.
    CommentLie,
    /// The first directory's end record, then the second's (no padding).
    TwoEnds,
}

#[derive(Debug, Arbitrary)]
struct Input {
    first: Vec<Member>,
    second: Vec<Member>,
    end: End,
}

fn name(i: u8) -> &'static [u8] {
    NAMES[i as usize % NAMES.len()]
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn unicode_extra(raw: &[u8], new: &[u8]) -> Vec<u8> {
    let mut body = vec![1];
    body.extend_from_slice(&crc32fast::hash(raw).to_le_bytes());
    body.extend_from_slice(new);
    let mut out = vec![0x75, 0x70];
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Appends the members' local headers and data to `out`; returns their central directory and,
/// for each local header's offset, whether the member is a payload.
fn members(out: &mut Vec<u8>, ms: &[Member], payload_at: &mut HashMap<usize, bool>) -> Vec<u8> {
    let mut cd = Vec::new();
    for m in ms.iter().take(8) {
        let raw = name(m.name);
        let data = if m.payload { PAYLOAD } else { HARMLESS };
        let (method, stored) = if m.deflate {
            (8u16, deflate(data))
        } else {
            (0u16, data.to_vec())
        };
        let crc = crc32fast::hash(data);
        let extra = m
            .unicode
            .map(|u| unicode_extra(raw, name(u)))
            .unwrap_or_default();
        let local_name = m.local.map(name).unwrap_or(raw);
        payload_at.insert(out.len(), m.payload);
        let at = out.len() as u32;
        let header = |sig: u32, central: bool, nm: &[u8]| {
            let mut h = sig.to_le_bytes().to_vec();
            if central {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            for v in [20u16, 0, method, 0, 0] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc, stored.len() as u32, data.len() as u32] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            h.extend_from_slice(&(nm.len() as u16).to_le_bytes());
            h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            if central {
                for v in [0u16, 0, 0] {
                    h.extend_from_slice(&v.to_le_bytes());
                }
                h.extend_from_slice(&0u32.to_le_bytes());
                h.extend_from_slice(&at.to_le_bytes());
            }
            h.extend_from_slice(nm);
            h.extend_from_slice(&extra);
            h
        };
        out.extend_from_slice(&header(0x04034b50, false, local_name));
        out.extend_from_slice(&stored);
        cd.extend_from_slice(&header(0x02014b50, true, raw));
    }
    cd
}

fn end_record(n: usize, cd: &[u8], at: usize, comment: u16, saturated: bool) -> Vec<u8> {
    let mut e = 0x06054b50u32.to_le_bytes().to_vec();
    let n = if saturated { 0xffff } else { n as u16 };
    for v in [0u16, 0, n, n] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    e.extend_from_slice(&(at as u32).to_le_bytes());
    e.extend_from_slice(&comment.to_le_bytes());
    e
}

fn zip64_end(n: usize, cd: &[u8], cd_at: usize, at: usize) -> Vec<u8> {
    let mut e = 0x06064b50u32.to_le_bytes().to_vec();
    e.extend_from_slice(&44u64.to_le_bytes());
    e.extend_from_slice(&45u16.to_le_bytes());
    e.extend_from_slice(&45u16.to_le_bytes());
    e.extend_from_slice(&[0; 8]);
    for v in [n as u64, n as u64, cd.len() as u64, cd_at as u64] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&0x07064b50u32.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&(at as u64).to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes());
    e
}

/// The archive, and which local-header offsets hold a payload.
fn build(input: &Input) -> (Vec<u8>, HashMap<usize, bool>) {
    let mut out = Vec::new();
    let mut payload_at = HashMap::new();
    let cd1 = members(&mut out, &input.first, &mut payload_at);
    let cd2 = members(&mut out, &input.second, &mut payload_at);
    let (n1, n2) = (input.first.len().min(8), input.second.len().min(8));
    let cd1_at = out.len();
    out.extend_from_slice(&cd1);
    match input.end {
        End::Plain(c) => {
            out.extend(end_record(n1, &cd1, cd1_at, c.into(), false));
            out.extend(std::iter::repeat(b' ').take(c.into()));
        }
        End::Zip64 => {
            let at = out.len();
            out.extend(zip64_end(n1, &cd1, cd1_at, at));
            out.extend(end_record(n1, &cd1, cd1_at, 0, true));
        }
        End::Zip64Other => {
            let cd2_at = out.len();
            out.extend_from_slice(&cd2);
            let at = out.len();
            out.extend(zip64_end(n2, &cd2, cd2_at, at));
            out.extend(end_record(n1, &cd1, cd1_at, 0, false));
        }
        End::CommentLie | End::TwoEnds => {
            out.extend(end_record(n1, &cd1, cd1_at, 0, false));
            if matches!(input.end, End::CommentLie) {
                out.extend(std::iter::repeat(0).take(70_000));
            }
            let cd2_at = out.len();
            out.extend_from_slice(&cd2);
            let lie = if matches!(input.end, End::CommentLie) {
                500
            } else {
                0
            };
            out.extend(end_record(n2, &cd2, cd2_at, lie, false));
        }
    }
    (out, payload_at)
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?).into())
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
}

/// Whether torch (miniz) would unpickle a payload as `data.pkl`; `None` when torch would refuse
/// the archive. Conservative where miniz's choice is unspecified (two names equal up to case:
/// its binary search may find either, so any payload among them counts).
fn torch_runs_payload(b: &[u8], payload_at: &HashMap<usize, bool>) -> Option<bool> {
    if !b.starts_with(b"PK\x03\x04") {
        return None; // torch would take it for a legacy file, whose first pickle is no pickle
    }
    // the last end-record signature with 22 bytes after it, within 64 KiB + 22 of the end
    let lo = b.len().saturating_sub(0xffff + 22);
    let eocd = (lo..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..i + 4] == *b"PK\x05\x06")?;
    let (mut n, mut cd_at) = (u16_at(b, eocd + 10)?, u32_at(b, eocd + 16)?);
    if eocd >= 20 + 56 && b[eocd - 20..eocd - 16] == *b"PK\x06\x07" {
        let rec = u64_at(b, eocd - 12)?;
        if b.get(rec..rec + 4) == Some(b"PK\x06\x06") {
            n = u64_at(b, rec + 32)?;
            cd_at = u64_at(b, rec + 48)?;
        }
    }
    // the directory's raw names
    let mut names = Vec::new();
    let mut at = cd_at;
    for _ in 0..n {
        if b.get(at..at + 4)? != b"PK\x01\x02" {
            return None;
        }
        let (nl, el, cl) = (
            u16_at(b, at + 28)?,
            u16_at(b, at + 30)?,
            u16_at(b, at + 32)?,
        );
        names.push((b.get(at + 46..at + 46 + nl)?.to_vec(), u32_at(b, at + 42)?));
        at += 46 + nl + el + cl;
    }
    let first = names.first()?;
    let slash = first.0.iter().position(|&c| c == b'/')?;
    let mut want = first.0[..slash].to_vec();
    want.extend_from_slice(b"/data.pkl");
    let hits: Vec<bool> = names
        .iter()
        .filter(|(nm, _)| nm.eq_ignore_ascii_case(&want))
        .map(|(_, off)| payload_at.get(off).copied().unwrap_or(false))
        .collect();
    if hits.is_empty() {
        return None;
    }
    Some(hits.iter().any(|&p| p))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    if input.first.is_empty() {
        return;
    }
    let (bytes, payload_at) = build(&input);
    let runs = torch_runs_payload(&bytes, &payload_at) == Some(true);
    if let Ok(scan) = timmconv::checkpoint::scan(&bytes) {
        if scan.is_safe() {
            assert!(
                !runs,
                "scan said safe but torch would unpickle a payload: {input:?}"
            );
        }
    }
    if let Ok(c) = Checkpoint::from_bytes(bytes, &OpenOptions::default()) {
        assert!(
            !runs,
            "opened an archive whose data.pkl torch reads is a payload: {input:?}"
        );
        for t in c.tensors() {
            let _ = c.tensor_bytes(t);
        }
    }
});
