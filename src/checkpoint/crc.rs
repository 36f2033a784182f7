//! CRC-32 checks of zip members, made with the bytes that are read anyway.
//!
//! torch (miniz, without `MZ_ZIP_FLAG_COMPUTE_CRC32`) never checks a member's CRC-32, so a
//! flipped byte in a stored tensor reaches the model unnoticed. Every read that walks a file in
//! order (the SHA-256 pass of a conversion, a tensor read through this process) can feed a
//! [`CrcFeed`]; a stored member whose every byte passed through one run of reads is checked
//! when its last byte arrives. A member read only in part, or copied by the kernel
//! (`copy_file_range`), is not checked unless [`CrcTable::check_all`] reads it for that
//! purpose. A deflated member is checked whenever it is inflated. What each path checks is in
//! docs/security.md.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result, ZipProblem};

/// Bytes read at a time by [`CrcTable::check_all`].
const BLOCK: usize = 4 << 20;

/// How a member's bytes are stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// As they are: the CRC-32 is over the file's bytes.
    Plain,
    /// Deflated: the CRC-32 is over the inflated bytes, `size` of them.
    Deflated { size: usize },
}

/// One member's data and the CRC-32 the central directory records for it.
#[derive(Debug)]
pub(crate) struct MemberCrc {
    /// The central-directory name, for messages.
    name: String,
    /// First byte of the data in the file.
    start: usize,
    /// Bytes of data in the file (compressed size for a deflated member).
    len: usize,
    stored: Stored,
    crc: u32,
    /// Set once the member has been checked, so no path checks it twice.
    checked: AtomicBool,
}

impl MemberCrc {
    pub(super) fn new(name: String, start: usize, len: usize, stored: Stored, crc: u32) -> Self {
        MemberCrc {
            name,
            start,
            len,
            stored,
            crc,
            checked: AtomicBool::new(false),
        }
    }

    fn end(&self) -> usize {
        self.start + self.len
    }

    /// Compares `actual` with the recorded CRC-32; marks the member checked when they agree.
    fn verdict(&self, actual: u32) -> Result<()> {
        if actual != self.crc {
            return Err(Error::ZipCrc {
                member: self.name.clone(),
                expected: self.crc,
                actual,
            });
        }
        self.checked.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Every member of an archive with its CRC-32, in file order (empty for other formats).
#[derive(Debug, Default)]
pub(crate) struct CrcTable {
    members: Vec<MemberCrc>,
}

impl CrcTable {
    /// The table of `members`, which the zip reader has checked not to overlap.
    pub(super) fn new(mut members: Vec<MemberCrc>) -> Self {
        members.sort_unstable_by_key(|m| m.start);
        CrcTable { members }
    }

    /// The name of the member whose data starts at `start`.
    pub(super) fn name_at(&self, start: usize) -> Option<&str> {
        self.find(start).map(|m| m.name.as_str())
    }

    fn find(&self, start: usize) -> Option<&MemberCrc> {
        let i = self.members.partition_point(|m| m.start < start);
        self.members.get(i).filter(|m| m.start == start)
    }

    /// Checks `bytes`, read from file offset `start`, when they are the whole data of a stored
    /// member not checked yet; anything else (part of a member, a deflated one) passes
    /// unchecked.
    pub(crate) fn check_whole(&self, start: usize, bytes: &[u8]) -> Result<()> {
        match self.find(start) {
            Some(m)
                if m.stored == Stored::Plain
                    && m.len == bytes.len()
                    && !m.checked.load(Ordering::Relaxed) =>
            {
                m.verdict(crc32fast::hash(bytes))
            }
            _ => Ok(()),
        }
    }

    /// A feed for reads of the file in order (see [`CrcFeed`]).
    pub(crate) fn feed(&self) -> CrcFeed<'_> {
        CrcFeed::new(&self.members)
    }

    /// Reads and checks every member not checked yet: stored ones from `file` (positioned
    /// reads, so the file's bytes do not stay resident in this process) or from `bytes`,
    /// deflated ones by inflating them from `bytes` a block at a time. What Python's
    /// `zipfile.ZipFile.testzip()` does; it costs one read of the members' data.
    pub(crate) fn check_all(&self, bytes: &[u8], file: Option<&File>) -> Result<()> {
        let mut buf = Vec::new();
        for m in &self.members {
            if m.checked.load(Ordering::Relaxed) {
                continue;
            }
            let data = m
                .start
                .checked_add(m.len)
                .and_then(|end| bytes.get(m.start..end))
                .ok_or_else(|| {
                    Error::zip(
                        ZipProblem::Truncated,
                        format!("entry `{}` runs past the end", m.name),
                    )
                })?;
            let mut h = crc32fast::Hasher::new();
            match (m.stored, file) {
                (Stored::Plain, Some(f)) => {
                    buf.resize(BLOCK.min(m.len), 0);
                    let mut at = m.start;
                    while at < m.end() {
                        let n = BLOCK.min(m.end() - at);
                        let chunk = &mut buf[..n];
                        crate::fileio::read_exact_at(f, chunk, at as u64).map_err(|e| {
                            Error::zip(
                                ZipProblem::Read,
                                format!("reading {n} bytes of `{}` at offset {at}: {e}", m.name),
                            )
                        })?;
                        h.update(chunk);
                        at += n;
                    }
                }
                (Stored::Plain, None) => h.update(data),
                (Stored::Deflated { size }, _) => {
                    buf.resize(BLOCK.min(size.max(1)), 0);
                    let mut inflater = flate2::read::DeflateDecoder::new(data);
                    let mut total = 0usize;
                    loop {
                        let n = inflater.read(&mut buf).map_err(|e| {
                            Error::zip(
                                ZipProblem::Malformed,
                                format!("deflated entry `{}`: {e}", m.name),
                            )
                        })?;
                        if n == 0 {
                            break;
                        }
                        total = total.saturating_add(n);
                        if total > size {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                    if total != size {
                        return Err(Error::zip(
                            ZipProblem::Malformed,
                            format!(
                                "deflated entry `{}` inflates to {}{total} bytes, its header says \
                             {size}",
                                m.name,
                                if total > size { "more than " } else { "" }
                            ),
                        ));
                    }
                }
            }
            m.verdict(h.finalize())?;
        }
        Ok(())
    }
}

/// A CRC-32 accumulator for reads of a file in order: each [`feed`](CrcFeed::feed) of
/// `(file offset, bytes)` that continues the previous one extends a run, and every stored member
/// that lies wholly inside the run is checked when its last byte arrives. A read that does not
/// continue the previous one starts a new run; a member the run began inside of is not checked.
#[derive(Debug)]
pub(crate) struct CrcFeed<'t> {
    /// Stored members only, in file order.
    members: &'t [MemberCrc],
    /// Where the current run began, and the offset its next read must start at.
    run: Option<(usize, usize)>,
    /// The first member the current run has not finished with.
    next: usize,
    /// The CRC-32 of the member in progress so far.
    hasher: crc32fast::Hasher,
}

impl<'t> CrcFeed<'t> {
    fn new(members: &'t [MemberCrc]) -> Self {
        CrcFeed {
            members,
            run: None,
            next: 0,
            hasher: crc32fast::Hasher::new(),
        }
    }

    /// A feed that checks nothing (a file that is not a zip archive).
    pub(crate) fn none() -> CrcFeed<'static> {
        CrcFeed::new(&[])
    }

    /// Takes `bytes`, read at file offset `at`.
    ///
    /// # Errors
    ///
    /// [`Error::ZipCrc`] for a member completed by these bytes whose CRC-32 differs from the
    /// one recorded for it.
    pub(crate) fn feed(&mut self, at: usize, bytes: &[u8]) -> Result<()> {
        if self.members.is_empty() || bytes.is_empty() {
            return Ok(());
        }
        let begin = match self.run {
            Some((begin, next)) if next == at => begin,
            _ => {
                self.next = self.members.partition_point(|m| m.start < at);
                self.hasher = crc32fast::Hasher::new();
                at
            }
        };
        let end = at.saturating_add(bytes.len());
        self.run = Some((begin, end));
        while let Some(m) = self.members.get(self.next) {
            // an empty member at the end of the run is complete; any other there is not begun
            if m.start > end || (m.start == end && m.len > 0) {
                break;
            }
            if m.stored == Stored::Plain && m.start >= begin {
                let from = m.start.max(at) - at;
                let to = m.end().min(end) - at;
                self.hasher.update(&bytes[from..to]);
            }
            if m.end() > end {
                break;
            }
            let h = std::mem::replace(&mut self.hasher, crc32fast::Hasher::new());
            if m.stored == Stored::Plain && m.start >= begin && !m.checked.load(Ordering::Relaxed) {
                m.verdict(h.finalize())?;
            }
            self.next += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stored members (`a` at 10..20, `b` at 30..35) and a deflated one in a 40-byte file.
    fn table(file: &[u8]) -> CrcTable {
        CrcTable::new(vec![
            MemberCrc::new(
                "b".into(),
                30,
                5,
                Stored::Plain,
                crc32fast::hash(&file[30..35]),
            ),
            MemberCrc::new(
                "a".into(),
                10,
                10,
                Stored::Plain,
                crc32fast::hash(&file[10..20]),
            ),
            MemberCrc::new("z".into(), 36, 2, Stored::Deflated { size: 9 }, 0),
        ])
    }

    fn file() -> Vec<u8> {
        (0u8..40).collect()
    }

    #[test]
    fn a_feed_in_any_pieces_checks_every_stored_member() {
        let f = file();
        for piece in [1, 3, 7, 40] {
            let t = table(&f);
            let mut feed = t.feed();
            for (i, chunk) in f.chunks(piece).enumerate() {
                feed.feed(i * piece, chunk).unwrap();
            }
            assert!(t.members[..2]
                .iter()
                .all(|m| m.checked.load(Ordering::Relaxed)));
        }
    }

    #[test]
    fn a_flipped_byte_is_named_by_its_member() {
        let mut f = file();
        let t = table(&f);
        f[33] ^= 1;
        let mut feed = t.feed();
        let err = f
            .chunks(4)
            .enumerate()
            .try_for_each(|(i, c)| feed.feed(i * 4, c))
            .unwrap_err();
        assert!(
            matches!(&err, Error::ZipCrc { member, .. } if member == "b"),
            "{err}"
        );
        // the member before it was checked and passed
        assert!(t.members[0].checked.load(Ordering::Relaxed));
    }

    #[test]
    fn a_run_that_starts_inside_a_member_does_not_check_it() {
        let mut f = file();
        let t = table(&f);
        f[12] ^= 1;
        let mut feed = t.feed();
        feed.feed(11, &f[11..25]).unwrap();
        feed.feed(25, &f[25..40]).unwrap();
        assert!(!t.members[0].checked.load(Ordering::Relaxed));
        assert!(t.members[1].checked.load(Ordering::Relaxed));
        // a gap starts a new run: `b` is then read only in part
        let mut f = file();
        let t = table(&f);
        f[33] ^= 1;
        let mut feed = t.feed();
        feed.feed(0, &f[0..31]).unwrap();
        feed.feed(32, &f[32..40]).unwrap();
        assert!(t.members[0].checked.load(Ordering::Relaxed));
        assert!(!t.members[1].checked.load(Ordering::Relaxed));
    }

    #[test]
    fn whole_reads_and_the_full_check_find_what_feeds_miss() {
        let mut f = file();
        let t = table(&f);
        f[15] ^= 1;
        t.check_whole(11, &f[11..20]).unwrap(); // part of `a`: not checked
        let err = t.check_whole(10, &f[10..20]).unwrap_err();
        assert!(
            matches!(&err, Error::ZipCrc { member, .. } if member == "a"),
            "{err}"
        );
        let err = t.check_all(&f, None).unwrap_err();
        assert!(
            matches!(&err, Error::ZipCrc { member, .. } if member == "a"),
            "{err}"
        );
    }
}
