//! Positioned reads and writes, and copies between files, with one implementation per OS:
//! `pread`/`pwrite` on Unix, `seek_read`/`seek_write` on Windows, and the kernel's
//! `copy_file_range` on Linux with a copy through memory everywhere else (and wherever the
//! kernel declines).

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

/// What [`copy_through_buffer`] reads and writes at a time, by where in the output: 1 MiB
/// writes let the page cache use large folios; past the first GiB, where the kernel's
/// writeback of what came before runs beside the copy, 256 KiB (a buffer that stays in a core's
/// L2 cache) is twice as fast. Measured on ext4 (docs/performance.md): 1 MiB copies a 346 MB
/// file in 0.11 s against 0.13 s for 256 KiB, and a 4.5 GB one in 2.1 to 4.7 s against 1.6 to
/// 2.1 s.
fn copy_chunk(dst_pos: u64) -> usize {
    if dst_pos < 1 << 30 {
        1 << 20
    } else {
        256 << 10
    }
}

/// Appends `len` bytes from `offset` of `src` to `dst`, at its current position `dst_pos`.
/// On Linux the kernel copies when both offsets sit at the same place in a page (where a
/// filesystem may also share the blocks); otherwise, elsewhere, and where the kernel declines
/// (another filesystem, an old kernel, a special file), the bytes go through `buf`. Measured
/// on vit_base (346 MB, ext4, docs/performance.md): the kernel's copy between offsets that do
/// not line up goes page by page and takes 1.5x the aligned copy, the buffer 1.2x.
pub(crate) fn copy_range(
    src: &File,
    offset: u64,
    len: u64,
    dst: &File,
    dst_pos: u64,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
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
    copy_through_buffer(src, offset, len, dst, dst_pos, buf)
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
    /// offsets in line (4 and 4100: the kernel) and not (5: the buffer).
    #[test]
    fn fallback_copy_equals_kernel_copy() {
        let (_, data) = source();
        let buffered =
            |s: &File, o, l, d: &File, p| copy_through_buffer(s, o, l, d, p, &mut Vec::new());
        let either = |s: &File, o, l, d: &File, p| copy_range(s, o, l, d, p, &mut Vec::new());
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
        for dst_pos in [0, 1] {
            assert!(copy_range(src.as_file(), 9 << 20, 100, &dst, dst_pos, &mut buf).is_err());
        }
        dst.flush().unwrap();
    }
}
