//! Positioned reads and writes, and copies between files, with one implementation per OS:
//! `pread`/`pwrite` on Unix, `seek_read`/`seek_write` on Windows, and on Linux the kernel's
//! `copy_file_range` or writes straight from a map of the input, with a copy through memory
//! everywhere else (and wherever the kernel declines).

use std::fs::File;
use std::io::{self, Write};

/// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at the end of the file).
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

/// Fills `buf` from `offset`, failing with `UnexpectedEof` if the file ends first.
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ended at byte {offset}"),
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset` (on Windows this also moves the file's cursor: call it only
/// once sequential writing is over, as the safetensors writer does for its header).
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        #[cfg(unix)]
        let written = std::os::unix::fs::FileExt::write_at(file, buf, offset);
        #[cfg(windows)]
        let written = std::os::windows::fs::FileExt::seek_write(file, buf, offset);
        match written {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The smallest page size: the page cache moves whole pages between files only when the input
/// and output offsets sit at the same place in a page.
const PAGE: u64 = 4096;

/// How many bytes [`copy_through_map`] and [`copy_through_buffer`] write at a time, by where in
/// the output: 1 MiB writes let the page cache use large folios; past the first GiB, where the
/// kernel's writeback of what came before runs beside the copy, 256 KiB writes are up to twice
/// as fast. Measured on ext4 (docs/performance.md): from a buffer, 1 MiB copies a 346 MB file
/// in 0.11 s against 0.13 s for 256 KiB, and a 4.5 GB one in 2.1 to 4.7 s against 1.6 to 2.1 s;
/// from the map, 1 MiB throughout took 3.2 to 4.4 s for the 4.5 GB file.
fn copy_chunk(dst_pos: u64) -> usize {
    if dst_pos < 1 << 30 {
        1 << 20
    } else {
        256 << 10
    }
}

/// Appends `len` bytes from `offset` of `src` to `dst`, at its current position `dst_pos`.
/// On Linux the kernel copies when both offsets sit at the same place in a page (where a
/// filesystem may also share the blocks); otherwise a range of 256 KiB or more is written
/// straight from a read-only map of the input ([`copy_through_map`]); shorter ranges, other
/// systems, and ranges the kernel declines (another filesystem, an old kernel, a special file)
/// go through a buffer. `state` keeps the buffer and the map from one call to the next (one
/// output's copies). Measured on vit_base (346 MB, ext4, docs/performance.md): the kernel's copy
/// between offsets that do not line up goes page by page and takes 1.6x the aligned copy, the
/// buffer 1.1x, the map 1.0x.
pub(crate) fn copy_range(
    src: &File,
    offset: u64,
    len: u64,
    dst: &File,
    dst_pos: u64,
    state: &mut CopyState,
) -> io::Result<()> {
    let buf = &mut state.buf;
    #[cfg(target_os = "linux")]
    {
        if offset % PAGE == dst_pos % PAGE {
            let mut off = offset;
            let end = offset + len;
            while off < end {
                let want = usize::try_from(end - off)
                    .unwrap_or(usize::MAX)
                    .min(1 << 30);
                match rustix::fs::copy_file_range(src, Some(&mut off), dst, None, want) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("input ended at byte {off}, expected {end}"),
                        ))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return copy_through_buffer(
                            src,
                            off,
                            end - off,
                            dst,
                            dst_pos + (off - offset),
                            buf,
                        )
                    }
                }
            }
            return Ok(());
        }
        if len >= MIN_MAPPED && copy_through_map(src, offset, len, dst, dst_pos, &mut state.map)? {
            return Ok(());
        }
    }
    copy_through_buffer(src, offset, len, dst, dst_pos, buf)
}

/// What [`copy_range`] keeps between the copies into one output: the buffer, and on Linux the
/// map of the input they come from (mapped once, not once a range: in a process with another
/// thread running, each unmap interrupts that thread's core).
#[derive(Default)]
pub(crate) struct CopyState {
    buf: Vec<u8>,
    #[cfg(target_os = "linux")]
    map: Option<MappedInput>,
}

/// The largest folio the page cache maps at once on x86-64 (a PMD's 2 MiB).
#[cfg(target_os = "linux")]
const FOLIO_REACH: usize = 2 << 20;

/// How much a [`MappedInput`] reads between two drops of page-table entries. Each drop costs
/// every other core running a thread of this process an interrupt (to flush its TLB). On a
/// mid-size zoo, `batch --jobs 2 --no-hash` dropping after every 1 MiB piece took 1.06x the time
/// of a copy without the map; every 2 MiB, 1.01x; the peak RSS of `batch --jobs 2` with hashing
/// is then 42 MB (39 MB without the map, 46 MB dropping every 4 MiB).
#[cfg(target_os = "linux")]
const DROP_EVERY: usize = 2 << 20;

/// Ranges shorter than this go through the buffer: a map costs two system calls of its own.
#[cfg(target_os = "linux")]
const MIN_MAPPED: u64 = 256 << 10;

/// Appends `len` bytes at `offset` of `src` to `dst` (at its position `dst_pos`), written from a
/// read-only map of the input ([`MappedInput`]) in the pieces [`copy_chunk`] sizes. This saves
/// the copy into a buffer that a `pread` makes: on vit_base, 0.081 s against 0.091 s, the same
/// as the kernel's copy between offsets in line. `map` is kept for the next range of the same
/// file.
///
/// Returns `Ok(false)`, having written nothing, where the file cannot be mapped (the caller
/// copies it through a buffer), and an `UnexpectedEof` error where the file is now shorter
/// than the range (checked before reading: a map past the end would fault instead).
#[cfg(target_os = "linux")]
fn copy_through_map(
    src: &File,
    offset: u64,
    len: u64,
    mut dst: &File,
    dst_pos: u64,
    map: &mut Option<MappedInput>,
) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let end = offset + len;
    let meta = src.metadata()?;
    if meta.len() < end {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("input ended at byte {}, expected {end}", meta.len()),
        ));
    }
    let id = (meta.dev(), meta.ino());
    if !map.as_ref().is_some_and(|m| m.id == id && m.holds(end)) {
        *map = MappedInput::new(src, meta.len(), id);
    }
    let Some(input) = map else {
        return Ok(false);
    };
    input.pieces(
        offset,
        len,
        |at| copy_chunk(dst_pos + at),
        |_, piece| write_mapped(&mut dst, piece, src, end),
    )
}

/// Writes a piece of a map of `src` that ends at or before `end`. If `src` was shortened
/// meanwhile, the kernel fails the write (`EFAULT`: the pages past the new end are gone), and
/// the error says that instead of "bad address".
#[cfg(target_os = "linux")]
fn write_mapped(dst: &mut &File, piece: &[u8], src: &File, end: u64) -> io::Result<()> {
    dst.write_all(piece).map_err(|e| match src.metadata() {
        Ok(m) if m.len() < end => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the input was shortened to {} bytes while it was read (expected {end})",
                m.len()
            ),
        ),
        _ => e,
    })
}

/// A read-only map of a whole input file, read a piece at a time by [`MappedInput::pieces`]:
/// each piece has its page-table entries filled in one call before it is read, and they are
/// dropped every [`DROP_EVERY`] bytes, so the pages never stay counted in this process (the
/// bytes stay in the page cache). Without the first call a map read at a fault every few
/// pages: a map and `write` copied vit_base in 0.17 s against 0.081 s.
#[cfg(target_os = "linux")]
pub(crate) struct MappedInput {
    map: memmap2::Mmap,
    /// The file's device and inode: a map is reused only for the same file.
    id: (u64, u64),
    /// The span read since the last drop (it may have page-table entries), and how much was read
    /// in it.
    span: std::ops::Range<usize>,
    pending: usize,
}

#[cfg(target_os = "linux")]
impl MappedInput {
    /// Maps the first `len` bytes of `src` (which the caller has checked the file holds);
    /// `None` where it cannot be mapped (the caller reads it some other way).
    #[allow(unsafe_code)]
    pub(crate) fn new(src: &File, len: u64, id: (u64, u64)) -> Option<MappedInput> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: the same contract as the checkpoint's own map (`checkpoint::map_file`):
        // read-only, never written by this process, and within the file's size as the caller
        // checked; another process shortening the file meanwhile makes reads past its new end
        // fault (docs/security.md says what happens then).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(src) }.ok()?;
        Some(MappedInput {
            map,
            id,
            span: 0..0,
            pending: 0,
        })
    }

    fn holds(&self, end: u64) -> bool {
        end <= self.map.len() as u64
    }

    /// Hands the `len` bytes at `offset` to `each` in order, as slices of the map with their
    /// position in the range; `piece(at)` says how long the slice at `at` is. Returns
    /// `Ok(false)`, having read nothing, for a range the map does not hold, and the first error
    /// of `each`.
    pub(crate) fn pieces<E>(
        &mut self,
        offset: u64,
        len: u64,
        piece: impl Fn(u64) -> usize,
        mut each: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<bool, E> {
        use memmap2::Advice;
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|r| r.end <= self.map.len());
        let Some(std::ops::Range { start, end }) = range else {
            return Ok(false);
        };
        let mut at = start;
        while at < end {
            let n = piece((at - start) as u64).clamp(1, end - at);
            // best effort: a kernel before 5.14 has no MADV_POPULATE_READ and faults pages in
            // one by one instead
            let _ = self.map.advise_range(Advice::PopulateRead, at, n);
            let read = each((at - start) as u64, &self.map[at..at + n]);
            self.span = if self.pending == 0 {
                at..at + n
            } else {
                self.span.start.min(at)..self.span.end.max(at + n)
            };
            self.pending += n;
            read?;
            if self.pending >= DROP_EVERY {
                self.drop_entries();
            }
            at += n;
        }
        Ok(true)
    }

    /// Drops the page-table entries of what was read since the last drop. A fault maps a large
    /// folio whole, pages on either side of what was asked for included: the span dropped
    /// reaches one folio further each way (with 256 KiB pieces, dropping only each piece left
    /// 164 MB resident after a 4.5 GB copy; this way 6 MB).
    #[allow(unsafe_code)]
    fn drop_entries(&mut self) {
        use memmap2::UncheckedAdvice;
        let from = self.span.start.saturating_sub(FOLIO_REACH);
        let to = (self.span.end + FOLIO_REACH).min(self.map.len());
        // SAFETY: the map is read-only and shared with the file: dropping this process's
        // page-table entries loses nothing (touched again, the bytes are read from the file)
        // and keeps the pages out of this process's resident size
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, from, to - from)
        };
        self.pending = 0;
    }
}

/// The portable [`copy_range`]: positioned reads into `buf` (grown to at most 1 MiB), appended
/// to `dst` at `dst_pos`, in the pieces [`copy_chunk`] sizes.
pub(crate) fn copy_through_buffer(
    src: &File,
    mut offset: u64,
    len: u64,
    mut dst: &File,
    dst_pos: u64,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let end = offset + len;
    let chunk = copy_chunk(dst_pos);
    let want = chunk.min(usize::try_from(len).unwrap_or(usize::MAX));
    if buf.len() < want {
        buf.resize(want, 0);
    }
    while offset < end {
        let n = chunk
            .min(buf.len())
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        read_exact_at(src, &mut buf[..n], offset)?;
        dst.write_all(&buf[..n])?;
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    fn source() -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..(9 << 20) + 17).map(|i| (i * 31 % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        (f, data)
    }

    fn copied(copy: impl Fn(&File, u64, u64, &File, u64) -> io::Result<()>, at: u64) -> Vec<u8> {
        let (src, _) = source();
        let mut dst = tempfile::tempfile().unwrap();
        dst.write_all(b"head").unwrap();
        copy(src.as_file(), at, (8 << 20) + 3, &dst, 4).unwrap();
        copy(src.as_file(), 0, 0, &dst, (8 << 20) + 7).unwrap();
        let mut out = Vec::new();
        dst.seek(SeekFrom::Start(0)).unwrap();
        dst.read_to_end(&mut out).unwrap();
        out
    }

    /// The fallback every OS but Linux takes gives the same bytes as the kernel copy, with the
    /// offsets in line (4 and 4100: the kernel) and not (5: on Linux the map, elsewhere the
    /// buffer).
    #[test]
    fn fallback_copy_equals_kernel_copy() {
        let (_, data) = source();
        let buffered =
            |s: &File, o, l, d: &File, p| copy_through_buffer(s, o, l, d, p, &mut Vec::new());
        let either =
            |s: &File, o, l, d: &File, p| copy_range(s, o, l, d, p, &mut CopyState::default());
        for at in [4, 5, 4100] {
            let mut want = b"head".to_vec();
            want.extend_from_slice(&data[at..at + (8 << 20) + 3]);
            assert_eq!(copied(buffered, at as u64), want);
            assert_eq!(copied(either, at as u64), want);
        }
        // past the first GiB of an output the pieces are smaller; the bytes are the same
        let far =
            |s: &File, o, l, d: &File, _| copy_through_buffer(s, o, l, d, 3 << 30, &mut Vec::new());
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[5..5 + (8 << 20) + 3]);
        assert_eq!(copied(far, 5), want);
        // a range that starts below the first GiB of the output and ends past it: the pieces
        // change size on the way
        let straddling = |s: &File, o, l, d: &File, _| {
            copy_range(s, o, l, d, (1 << 30) - (3 << 20), &mut CopyState::default())
        };
        assert_eq!(copied(straddling, 5), want);
    }

    /// The map copies the input's bytes, for any start in a page and either size of piece.
    #[cfg(target_os = "linux")]
    #[test]
    fn map_copy_equals_buffer_copy() {
        let (src, data) = source();
        // one map for all the ranges of one output, as a conversion uses it
        let mut map = None;
        for at in [0usize, 1, 4095, 4097, (1 << 20) + 9, 5 << 20, 17] {
            let len = (3 << 20) + 5;
            for dst_pos in [0, 3 << 30] {
                let mut dst = tempfile::tempfile().unwrap();
                let copied = copy_through_map(
                    src.as_file(),
                    at as u64,
                    len as u64,
                    &dst,
                    dst_pos,
                    &mut map,
                );
                assert!(copied.unwrap());
                let mut out = Vec::new();
                dst.seek(SeekFrom::Start(0)).unwrap();
                dst.read_to_end(&mut out).unwrap();
                assert!(
                    out == data[at..at + len],
                    "from byte {at}, output at {dst_pos}"
                );
            }
        }
        // the file grew: the map is made again, covering the new bytes
        let mut grown = src.reopen().unwrap();
        grown.seek(SeekFrom::End(0)).unwrap();
        grown.write_all(b"tail").unwrap();
        let mut dst = tempfile::tempfile().unwrap();
        let size = data.len() as u64;
        assert!(copy_through_map(src.as_file(), size - 4, 8, &dst, 1, &mut map).unwrap());
        let mut out = Vec::new();
        dst.seek(SeekFrom::Start(0)).unwrap();
        dst.read_to_end(&mut out).unwrap();
        assert_eq!(out, [&data[data.len() - 4..], b"tail"].concat());
    }

    /// A range the map does not hold (past its end, or overflowing) is read from nothing.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_range_outside_the_map_is_declined() {
        let (src, _) = source();
        let mut map = MappedInput::new(src.as_file(), 100, (0, 0)).unwrap();
        let mut calls = 0;
        for (offset, len) in [(96, 8), (u64::MAX - 2, 8), (100, 1)] {
            let read = map.pieces(
                offset,
                len,
                |_| 4,
                |_, _| {
                    calls += 1;
                    Ok::<(), ()>(())
                },
            );
            assert_eq!(read, Ok(false), "{offset}+{len}");
        }
        let read = map.pieces(
            96,
            4,
            |_| 4,
            |_, _| {
                calls += 1;
                Ok::<(), ()>(())
            },
        );
        assert_eq!(read, Ok(true));
        assert_eq!(calls, 1);
    }

    /// An input shortened during a mapped copy: the write fails and says so (no fault: the
    /// kernel, not this process, touches the pages past the new end).
    #[cfg(target_os = "linux")]
    #[test]
    fn input_shortened_during_a_mapped_copy_is_an_error() {
        let (src, _) = source();
        let mut dst = tempfile::tempfile().unwrap();
        let end = 9 << 20;
        let mut map = MappedInput::new(src.as_file(), end, (0, 0)).unwrap();
        let err = map
            .pieces(
                0,
                end,
                |_| 1 << 20,
                |at, piece| {
                    if at == 0 {
                        src.as_file().set_len(3 << 20).unwrap();
                    }
                    write_mapped(&mut &dst, piece, src.as_file(), end)
                },
            )
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            err.to_string().contains("shortened to 3145728 bytes"),
            "{err}"
        );
        dst.flush().unwrap();
    }

    #[test]
    fn reading_past_the_end_is_an_error_not_a_short_read() {
        let (src, _) = source();
        let mut buf = vec![0u8; 64];
        let err = read_exact_at(src.as_file(), &mut buf, (9 << 20) + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut dst = tempfile::tempfile().unwrap();
        let mut buf = Vec::new();
        assert!(copy_through_buffer(src.as_file(), 9 << 20, 100, &dst, 0, &mut buf).is_err());
        let mut state = CopyState::default();
        for dst_pos in [0, 1] {
            assert!(copy_range(src.as_file(), 9 << 20, 100, &dst, dst_pos, &mut state).is_err());
        }
        // long enough for the map: it checks the size first instead of faulting past the end
        for (from, dst_pos) in [(1 << 20, 0), (1 << 20, 1), (9 << 20, 1)] {
            let err =
                copy_range(src.as_file(), from, 9 << 20, &dst, dst_pos, &mut state).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
        dst.flush().unwrap();
    }
}
