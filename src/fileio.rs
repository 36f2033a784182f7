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

/// Appends `len` bytes from `offset` of `src` to `dst` (at its current position): through
/// the kernel on Linux, through a buffer elsewhere or when the kernel cannot (another
/// filesystem, an old kernel, a special file).
pub(crate) fn copy_range(src: &File, offset: u64, len: u64, dst: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
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
                Err(_) => return copy_through_buffer(src, off, end - off, dst),
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        copy_through_buffer(src, offset, len, dst)
    }
}

/// The portable [`copy_range`]: positioned reads into a 4 MiB buffer, appended to `dst`.
pub(crate) fn copy_through_buffer(
    src: &File,
    mut offset: u64,
    len: u64,
    mut dst: &File,
) -> io::Result<()> {
    let end = offset + len;
    let mut buf = vec![0u8; (4 << 20).min(usize::try_from(len).unwrap_or(usize::MAX))];
    while offset < end {
        let n = buf
            .len()
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

    fn copied(copy: impl Fn(&File, u64, u64, &File) -> io::Result<()>) -> Vec<u8> {
        let (src, _) = source();
        let mut dst = tempfile::tempfile().unwrap();
        dst.write_all(b"head").unwrap();
        copy(src.as_file(), 5, (9 << 20) + 3, &dst).unwrap();
        copy(src.as_file(), 0, 0, &dst).unwrap();
        let mut out = Vec::new();
        dst.seek(SeekFrom::Start(0)).unwrap();
        dst.read_to_end(&mut out).unwrap();
        out
    }

    /// The fallback every OS but Linux takes gives the same bytes as the kernel copy.
    #[test]
    fn fallback_copy_equals_kernel_copy() {
        let (_, data) = source();
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[5..5 + (9 << 20) + 3]);
        assert_eq!(copied(copy_through_buffer), want);
        assert_eq!(copied(copy_range), want);
    }

    #[test]
    fn reading_past_the_end_is_an_error_not_a_short_read() {
        let (src, _) = source();
        let mut buf = vec![0u8; 64];
        let err = read_exact_at(src.as_file(), &mut buf, (9 << 20) + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut dst = tempfile::tempfile().unwrap();
        assert!(copy_through_buffer(src.as_file(), 9 << 20, 100, &dst).is_err());
        assert!(copy_range(src.as_file(), 9 << 20, 100, &dst).is_err());
        dst.flush().unwrap();
    }
}
