//! Streaming safetensors writer: header first, then each tensor's bytes as they are produced,
//! into a temporary file in the destination folder that is renamed into place when complete.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::dtype::DType;
use crate::error::{Error, Result, SafeTensorsProblem, TensorProblem};

/// Prefix of the temporary files timmconv writes next to an output; never a finished file.
/// On Linux the data is written to an unnamed file (`O_TMPFILE`) that only gets a name when it
/// is complete, so even a killed or aborted process leaves nothing behind.
pub const TEMP_PREFIX: &str = ".timmconv-partial-";

pub use crate::checkpoint::safetensors::MAX_HEADER_BYTES;

/// The key safetensors reserves for the metadata; no tensor may have it.
pub const METADATA_KEY: &str = "__metadata__";

/// What the writer gathers before a `write`: the header and the small tensors between the big
/// ones, which the kernel copies without it. 1 MiB keeps the syscalls few and the peak RSS low.
const WRITE_BUFFER: usize = 1 << 20;

/// One tensor to write.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Key.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

impl Entry {
    /// Bytes of data, or `None` when that overflows.
    fn nbytes(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(self.dtype.size(), |acc, &d| acc.checked_mul(d))
    }
}

/// Checks that `entries` make a file every safetensors reader can read back: no tensor named
/// `__metadata__`, no name twice, no control characters in a name, sizes that fit.
pub fn validate(entries: &[Entry]) -> Result<()> {
    // the names alone are a lower bound of the header: refuse before anything is serialised
    let names = entries
        .iter()
        .fold(0usize, |n, e| n.saturating_add(e.name.len()));
    Error::at_most("MAX_HEADER_BYTES", names, MAX_HEADER_BYTES, || {
        "tensor names of the output (the safetensors header would exceed the readers' limit)"
    })?;
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for e in entries {
        let bad = |what: &str| {
            Error::tensor(
                TensorProblem::Output,
                crate::error::printable(&e.name),
                what.to_owned(),
            )
        };
        if e.name == METADATA_KEY {
            return Err(bad(
                "`__metadata__` is the key safetensors reserves for metadata; a tensor of that \
                 name makes a file no reader can open (rename it)",
            ));
        }
        if e.name.chars().any(char::is_control) {
            return Err(bad(
                "the name holds control characters, which an output name must not",
            ));
        }
        if !seen.insert(e.name.as_str()) {
            return Err(bad("two tensors of the output would have this name"));
        }
        if e.nbytes().is_none() {
            return Err(bad("its size overflows"));
        }
    }
    Ok(())
}

/// The order safetensors itself writes: by dtype alignment, largest first, then by name.
pub(crate) fn reference_order(entries: &[Entry]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (&entries[a], &entries[b]);
        eb.dtype
            .to_safetensors()
            .cmp(&ea.dtype.to_safetensors())
            .then_with(|| ea.name.cmp(&eb.name))
    });
    order
}

/// The safetensors header (JSON padded with spaces to 8 bytes) for `entries` written in `order`.
pub(crate) fn header(
    entries: &[Entry],
    order: &[usize],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut map = Map::new();
    if !metadata.is_empty() {
        map.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0usize;
    for &i in order {
        let e = &entries[i];
        let end = e
            .nbytes()
            .and_then(|n| offset.checked_add(n))
            .ok_or_else(|| {
                Error::tensor(
                    TensorProblem::Output,
                    &e.name,
                    "the output's size overflows",
                )
            })?;
        map.insert(
            e.name.clone(),
            json!({"dtype": e.dtype.to_safetensors(), "shape": e.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut bytes =
        serde_json::to_vec(&Value::Object(map)).map_err(|e| Error::Internal(e.to_string()))?;
    let padded = bytes.len().next_multiple_of(8);
    if padded > MAX_HEADER_BYTES {
        return Err(Error::limit(
            "MAX_HEADER_BYTES",
            "safetensors header of the output (names and shapes)",
            padded as u64,
            MAX_HEADER_BYTES as u64,
        ));
    }
    bytes.resize(padded, b' ');
    Ok(bytes)
}

/// What to write for one tensor: bytes in memory, or a range of an open file that the kernel
/// copies (`copy_file_range`) without passing through this process.
pub enum Chunk<'a> {
    /// Bytes to write.
    Bytes(Cow<'a, [u8]>),
    /// `len` bytes at `offset` of `file`.
    FileRange {
        /// The source file.
        file: &'a File,
        /// Byte offset in it.
        offset: u64,
        /// Bytes to copy.
        len: u64,
    },
}

impl Chunk<'_> {
    fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::FileRange { len, .. } => *len,
        }
    }
}

/// The temporary file behind an [`Output`].
enum Temp {
    /// An unnamed file in the destination's folder (Linux `O_TMPFILE`), linked in by name
    /// only when complete.
    #[cfg(target_os = "linux")]
    Unnamed { file: File, dir: PathBuf },
    /// A named temporary file beside the destination, removed on drop.
    Named(tempfile::NamedTempFile),
}

impl Temp {
    fn file(&self) -> &File {
        match self {
            #[cfg(target_os = "linux")]
            Temp::Unnamed { file, .. } => file,
            Temp::Named(t) => t.as_file(),
        }
    }
}

impl Write for Temp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut f = self.file();
        f.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Refuses to write over `dest` when it holds anything but what an output may replace: a
/// regular file, or (`folder`, for a hub folder) a real folder. A FIFO, a socket, a device, a
/// symbolic link (to anything: renaming over it would replace the link, and a link to a device
/// is how `/dev/stdout` looks) is refused whether or not replacing was asked for, and the error
/// says what is there. Every writer calls this before any work and again just before the
/// rename, so one check decides what an output may replace.
///
/// # Errors
///
/// [`Error::OutputNotRegular`], or the I/O error of looking.
pub fn check_replaceable(dest: &Path, folder: bool) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dest, e)),
    };
    let t = meta.file_type();
    if (!folder && t.is_file()) || (folder && t.is_dir()) {
        return Ok(());
    }
    // a hub folder's path holding a regular file is the hub writer's to word
    if folder && t.is_file() {
        return Ok(());
    }
    let what = if t.is_symlink() {
        let to = std::fs::read_link(dest)
            .map(|p| crate::error::printable(&p.display().to_string()).into_owned())
            .unwrap_or_else(|_| "?".to_owned());
        match std::fs::metadata(dest) {
            Ok(m) => format!(
                "a symbolic link to {to}, which is {}",
                crate::small_file::kind(m.file_type())
            ),
            Err(_) => format!("a symbolic link to {to}, which does not exist"),
        }
    } else {
        crate::small_file::kind(t).to_owned()
    };
    Err(Error::OutputNotRegular {
        path: dest.to_path_buf(),
        what,
    })
}

/// An output file being written: a temporary file in the destination's folder until
/// [`Output::commit`] renames it into place. Dropped without commit, it is removed (and on
/// Linux it never had a name: a crash, abort or SIGKILL leaves nothing either).
pub(crate) struct Output {
    file: BufWriter<Temp>,
    dest: PathBuf,
    /// What copies the kernel does not make go through (see [`crate::fileio::copy_range`]).
    copy_state: crate::fileio::CopyState,
}

impl Output {
    /// Starts writing towards `dest`. The file gets the permissions any new file of this
    /// process gets (0666 less the umask), like `cp` or `torch.save` give.
    ///
    /// # Errors
    ///
    /// The destination's folder cannot be written.
    pub fn create(dest: &Path) -> Result<Output> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        #[cfg(target_os = "linux")]
        if let Some(file) = unnamed_temp(&dir) {
            return Ok(Output {
                file: BufWriter::with_capacity(WRITE_BUFFER, Temp::Unnamed { file, dir }),
                dest: dest.to_path_buf(),
                copy_state: crate::fileio::CopyState::default(),
            });
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Output {
            file: BufWriter::with_capacity(WRITE_BUFFER, Temp::Named(tmp)),
            dest: dest.to_path_buf(),
            copy_state: crate::fileio::CopyState::default(),
        })
    }

    fn ioerr(&self, e: std::io::Error) -> Error {
        Error::io(&self.dest, e)
    }

    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.dest, e))
    }

    /// Appends `len` bytes from `offset` of `src`, copied by the kernel where it can. An input
    /// that ends too soon (shortened while it is read) is an error of the tensor `key`, not of
    /// the output.
    pub fn copy_range(&mut self, src: &File, offset: u64, len: u64, key: &str) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.dest, e))?;
        let mut dst = self.file.get_ref().file();
        let pos = std::io::Seek::stream_position(&mut dst).map_err(|e| self.ioerr(e))?;
        crate::fileio::copy_range(src, offset, len, dst, pos, &mut self.copy_state).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::tensor(
                    TensorProblem::Read,
                    key,
                    format!("copying {len} bytes from offset {offset} of the input: {e}"),
                )
            } else {
                Error::io(&self.dest, e)
            }
        })
    }

    /// Overwrites bytes at `offset` of what was written (the header, once the metadata is known).
    pub fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.dest, e))?;
        crate::fileio::write_all_at(self.file.get_ref().file(), bytes, offset)
            .map_err(|e| self.ioerr(e))
    }

    /// Flushes and renames into place; refuses to replace an existing file unless `overwrite`.
    /// With `sync`, the data reaches the disk before the rename (survives a power loss, at the
    /// price of waiting for the disk); without it, like `cp`, the page cache holds it.
    pub fn commit(self, overwrite: bool, sync: bool) -> Result<()> {
        let dest = self.dest;
        // again at the last moment: what is at `dest` may have changed while the data was
        // written (a rename cannot ask for "only over a regular file")
        check_replaceable(&dest, false)?;
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| Error::io(&dest, e.into_error()))?;
        if sync {
            tmp.file().sync_all().map_err(|e| Error::io(&dest, e))?;
        }
        match tmp {
            #[cfg(target_os = "linux")]
            Temp::Unnamed { file, dir } => link_unnamed(&file, &dir, &dest, overwrite),
            Temp::Named(tmp) => {
                let result = if overwrite {
                    let old = hold_replaced(&dest);
                    tmp.persist(&dest).map(|_| release_later(old))
                } else {
                    tmp.persist_noclobber(&dest).map(|_| ())
                };
                result.map_err(|e| Error::io(&dest, e.error))
            }
        }
    }
}

/// An unnamed file in `dir`, or `None` where the filesystem or kernel has no `O_TMPFILE` (or
/// `/proc`, through which it is linked in).
#[cfg(target_os = "linux")]
fn unnamed_temp(dir: &Path) -> Option<File> {
    use rustix::fs::{Mode, OFlags, CWD};
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let fd = rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )
    .ok()?;
    Some(File::from(fd))
}

/// Gives the finished unnamed file its name: linked straight to `dest` when nothing may be
/// replaced (atomic, fails if `dest` exists); otherwise linked to a temporary name and renamed
/// over `dest`.
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, dir: &Path, dest: &Path, overwrite: bool) -> Result<()> {
    use std::os::fd::AsRawFd;

    use rustix::fs::{AtFlags, CWD};
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let link = |to: &Path| rustix::fs::linkat(CWD, &proc_path, CWD, to, AtFlags::SYMLINK_FOLLOW);
    if !overwrite {
        return link(dest).map_err(|e| Error::io(dest, e.into()));
    }
    for _ in 0..16 {
        let name = dir.join(format!(
            "{TEMP_PREFIX}{:016x}.tmp",
            rand_u64(file.as_raw_fd())
        ));
        match link(&name) {
            Ok(()) => {
                let old = hold_replaced(dest);
                return match std::fs::rename(&name, dest) {
                    Ok(()) => {
                        release_later(old);
                        Ok(())
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&name);
                        Err(Error::io(dest, e))
                    }
                };
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(Error::io(dest, e.into())),
        }
    }
    Err(Error::io(
        dest,
        std::io::Error::other("no free temporary name in the output folder"),
    ))
}

/// A handle on the file at `path` that keeps it alive once it loses its name: where a rename
/// replaces the last name of a large file, the filesystem frees its blocks (and drops its cached
/// pages) in the rename itself, unless some handle still holds it; then that work waits for the
/// handle's close, which [`release_later`] moves off the caller's thread. An `O_PATH` handle
/// opens nothing (no device is opened, no read permission is needed, a link is not followed)
/// and reads nothing; `None` for anything but a regular file with one name, or where such a
/// handle cannot be had, and the rename then frees the blocks itself, as without this.
#[cfg(target_os = "linux")]
pub(crate) fn hold_replaced(path: &Path) -> Option<std::os::fd::OwnedFd> {
    use rustix::fs::{FileType, Mode, OFlags, CWD};
    let fd = rustix::fs::openat(
        CWD,
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_nlink == 1).then_some(fd)
}

/// Elsewhere there is nothing to hold: replacing frees the old file's blocks in the rename.
#[cfg(not(target_os = "linux"))]
pub(crate) fn hold_replaced(_path: &Path) -> Option<()> {
    None
}

/// Drops `held` (from [`hold_replaced`], after the rename that took its name) on a thread of its
/// own, so that freeing the replaced file's blocks overlaps whatever the caller does next (the
/// next job of a batch). Nothing on disk depends on it: the file has no name left, and a crash
/// before the close leaves the kernel to free it (an unlinked open inode is on ext4's orphan
/// list). Where no thread can be started it is dropped here.
pub(crate) fn release_later<T: Send + 'static>(held: Option<T>) {
    if let Some(h) = held {
        // on a spawn error the closure, and `h` with it, is dropped here
        let _ = std::thread::Builder::new()
            .name("timmconv-release".into())
            .spawn(move || drop(h));
    }
}

/// Removes the file `path` as [`std::fs::remove_file`] does, with the freeing of its blocks
/// moved off the caller's thread as [`release_later`] does (the old model file of a hub folder
/// replaced with `--force`).
///
/// # Errors
///
/// The error of removing it.
pub(crate) fn remove_file_later(path: &Path) -> std::io::Result<()> {
    let held = hold_replaced(path);
    std::fs::remove_file(path)?;
    release_later(held);
    Ok(())
}

/// A name-picking number: not cryptographic, only unlikely to collide.
#[cfg(target_os = "linux")]
fn rand_u64(salt: i32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i32(salt);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Writes `bytes` (a chart, a small report) to `dest` the way every output is written: staged
/// beside it, checked with [`check_replaceable`], and renamed into place as `policy` says.
///
/// # Errors
///
/// What is at `dest` may not be replaced, or the folder cannot be written; nothing is left
/// behind then.
pub fn write_bytes(dest: &Path, bytes: &[u8], policy: CommitPolicy) -> Result<()> {
    check_replaceable(dest, false)?;
    let mut out = Output::create(dest)?;
    out.write(bytes)?;
    out.commit(policy.overwrite, policy.sync)
}

/// What a safetensors file at an output path holds, read from its header alone.
#[derive(Debug, Clone, Default)]
pub struct WrittenOutput {
    /// Its `__metadata__`.
    pub metadata: BTreeMap<String, String>,
    /// Whether a reader can read it back: the file is exactly as long as the header says (a
    /// file truncated after its header is not).
    pub complete: bool,
}

/// Reads the header of the safetensors file at `path` (a regular file only) as every reader
/// checks it (offsets contiguous from 0, each tensor's bytes what its dtype and shape need, no
/// more than [`MAX_SAFETENSORS_TENSORS`](crate::checkpoint::MAX_SAFETENSORS_TENSORS) tensors,
/// a header within [`MAX_HEADER_BYTES`]) and compares the file's length with what it says;
/// no tensor data is read.
///
/// # Errors
///
/// Nothing there, not a regular file, or a header no reader accepts.
pub fn read_written(path: &Path) -> Result<WrittenOutput> {
    let file = crate::small_file::open_existing(path)?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    crate::fileio::read_exact_at(&file, &mut len, 0).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len);
    if n > size.saturating_sub(8) {
        return Err(Error::safetensors(
            SafeTensorsProblem::Truncated,
            format!(
                "{}: the header says {n} bytes, the file holds {size}",
                path.display()
            ),
        ));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    Error::at_most("MAX_HEADER_BYTES", n, MAX_HEADER_BYTES, || {
        "bytes of the safetensors header"
    })?;
    let mut bytes = vec![0u8; n.saturating_add(8)];
    crate::fileio::read_exact_at(&file, &mut bytes, 0).map_err(|e| Error::io(path, e))?;
    crate::checkpoint::safetensors::count_tensors(&bytes)?;
    let header = bytes.get(8..).unwrap_or_default();
    let meta: safetensors::tensor::Metadata = serde_json::from_slice(header)
        .map_err(|e| Error::safetensors(SafeTensorsProblem::Invalid, e.to_string()))?;
    let end = u64::try_from(meta.data_len())
        .ok()
        .and_then(|d| d.checked_add(8))
        .and_then(|d| d.checked_add(n as u64));
    Ok(WrittenOutput {
        metadata: meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        complete: end == Some(size),
    })
}

/// Which file an output path names, however it is spelt: the device and inode of the deepest
/// folder of it that exists (links followed, `..` resolved as the kernel resolves it) and the
/// names below it. `out`, `sub/../out` and a path through a linked folder to the same place
/// are one [`OutputId`]; so are two mounts of one folder.
///
/// ```
/// use timmconv::write::OutputId;
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("sub"))?;
/// let a = OutputId::of(&dir.path().join("out.safetensors"))?;
/// let b = OutputId::of(&dir.path().join("sub/../out.safetensors"))?;
/// let c = OutputId::of(&dir.path().join("new/../out.safetensors"))?;
/// assert_eq!(a, b);
/// assert_eq!(a, c);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputId {
    dev: u64,
    ino: u64,
    /// Where there are no inode numbers, the folder's canonical path stands for them.
    #[cfg(not(unix))]
    dir: PathBuf,
    rest: Vec<std::ffi::OsString>,
}

impl OutputId {
    /// The identity of `path` (which need not exist, nor its folder).
    ///
    /// # Errors
    ///
    /// The current folder cannot be read, or a path that names no file (`/`, ending in `..`).
    pub fn of(path: &Path) -> Result<OutputId> {
        use std::path::Component;
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io(path, e))?
                .join(path)
        };
        // the names past the deepest existing folder, `.` and `..` resolved: a folder that does
        // not exist yet cannot be a link, so its `..` is lexical; one that exists is
        // canonicalised, and the walk starts again from there
        let mut dir = PathBuf::new();
        let mut rest: Vec<std::ffi::OsString> = Vec::new();
        for c in abs.components() {
            match c {
                Component::Prefix(_) | Component::RootDir => dir.push(c.as_os_str()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if rest.pop().is_none() {
                        dir = dir.parent().map(Path::to_path_buf).unwrap_or(dir);
                    }
                }
                Component::Normal(name) => {
                    if rest.is_empty() {
                        let next = dir.join(name);
                        match std::fs::canonicalize(&next) {
                            Ok(real) if real.is_dir() => dir = real,
                            _ => rest.push(name.to_owned()),
                        }
                    } else {
                        rest.push(name.to_owned());
                    }
                }
            }
        }
        if rest.is_empty() {
            return Err(Error::io(
                path,
                std::io::Error::other("names a folder, not a file to write"),
            ));
        }
        let meta = std::fs::metadata(&dir).map_err(|e| Error::io(&dir, e))?;
        let (dev, ino) = dev_ino(&meta);
        Ok(OutputId {
            dev,
            ino,
            #[cfg(not(unix))]
            dir,
            rest,
        })
    }
}

#[cfg(unix)]
fn dev_ino(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn dev_ino(_m: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// How a finished output takes its place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitPolicy {
    /// Replace an existing file at the destination (atomically); without it an existing file
    /// is an error and stays as it was.
    pub overwrite: bool,
    /// Flush the data to the disk before the file gets its name (survives a power loss).
    pub sync: bool,
}

/// A safetensors file being written, tensor by tensor, in safetensors' own order:
/// [`create`](SafetensorsWriter::create) it with every tensor's name, dtype and shape, [`add`]
/// each tensor's bytes in the order [`next`](SafetensorsWriter::next) names (in one or more
/// chunks), then [`finish`](SafetensorsWriter::finish) with the final metadata. Until then the
/// data lives in a temporary file that nothing else sees; dropping the writer (an error, a
/// panic) removes it.
///
/// ```
/// use std::collections::BTreeMap;
/// use timmconv::write::{Chunk, CommitPolicy, Entry, SafetensorsWriter};
/// use timmconv::DType;
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("w.safetensors");
/// let entries = vec![
///     Entry { name: "b".into(), dtype: DType::F32, shape: vec![2] },
///     Entry { name: "a".into(), dtype: DType::F32, shape: vec![1] },
/// ];
/// let mut w = SafetensorsWriter::create(&dest, entries, &BTreeMap::new())?;
/// while let Some(e) = w.next() {
///     let n = e.shape.iter().product::<usize>();
///     w.add(Chunk::Bytes(bytemuck::cast_slice(&vec![1.5f32; n]).to_vec().into()))?;
/// }
/// w.finish(&BTreeMap::new(), CommitPolicy::default())?;
/// let ckpt = timmconv::Checkpoint::open(&dest, &Default::default())?;
/// assert_eq!(ckpt.array::<f32>("b")?.as_slice(), Some(&[1.5, 1.5][..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`add`]: SafetensorsWriter::add
pub struct SafetensorsWriter {
    out: Output,
    entries: Vec<Entry>,
    order: Vec<usize>,
    draft: BTreeMap<String, String>,
    draft_len: usize,
    /// Position in `order` of the tensor being added, and its bytes so far.
    at: usize,
    written: u64,
}

impl SafetensorsWriter {
    /// Validates `entries` (see [`validate`]) and starts the file at `dest` with a header
    /// carrying `metadata`; [`finish`](Self::finish) may replace that metadata by any of the
    /// same serialised length (a checksum computed meanwhile, say).
    ///
    /// # Errors
    ///
    /// An entry [`validate`] refuses, a header over [`MAX_HEADER_BYTES`], or a destination
    /// folder that cannot be written. Nothing is created then.
    pub fn create(
        dest: &Path,
        entries: Vec<Entry>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<SafetensorsWriter> {
        validate(&entries)?;
        let order = reference_order(&entries);
        let draft = header(&entries, &order, metadata)?;
        let mut out = Output::create(dest)?;
        out.write(&(draft.len() as u64).to_le_bytes())?;
        out.write(&draft)?;
        let mut w = SafetensorsWriter {
            out,
            entries,
            order,
            draft: metadata.clone(),
            draft_len: draft.len(),
            at: 0,
            written: 0,
        };
        w.skip_empty();
        Ok(w)
    }

    /// Zero-sized tensors hold no bytes: they are complete as soon as they are reached.
    fn skip_empty(&mut self) {
        while self.next().is_some_and(|e| e.nbytes() == Some(0)) {
            self.at += 1;
        }
    }

    /// The tensor whose bytes [`add`](Self::add) takes next, or `None` when all are in.
    pub fn next(&self) -> Option<&Entry> {
        self.order.get(self.at).map(|&i| &self.entries[i])
    }

    /// Index (in the `entries` given to [`create`](Self::create)) of the next tensor.
    pub fn next_index(&self) -> Option<usize> {
        self.order.get(self.at).copied()
    }

    /// Appends bytes of the current tensor; moves to the next once its size is reached.
    ///
    /// # Errors
    ///
    /// More bytes than the tensors still need, or a write that fails.
    pub fn add(&mut self, chunk: Chunk<'_>) -> Result<()> {
        let Some(e) = self.next() else {
            return Err(Error::safetensors(
                SafeTensorsProblem::Writer,
                "more data than the tensors declared".into(),
            ));
        };
        let want = e.nbytes().unwrap_or(usize::MAX) as u64;
        if self.written + chunk.len() > want {
            return Err(Error::tensor(
                TensorProblem::Writer,
                &e.name,
                format!("produced more than its {want} bytes"),
            ));
        }
        match &chunk {
            Chunk::Bytes(b) => self.out.write(b)?,
            Chunk::FileRange { file, offset, len } => {
                // the fields apart: `e` borrows all of `self`
                let key = &self.entries[self.order[self.at]].name;
                self.out.copy_range(file, *offset, *len, key)?;
            }
        }
        self.written += chunk.len();
        if self.written == want {
            self.at += 1;
            self.written = 0;
        }
        self.skip_empty();
        Ok(())
    }

    /// Checks every tensor is complete, writes `metadata` into the header (it must serialise
    /// to the draft's length) and gives the file its name as `policy` says.
    ///
    /// # Errors
    ///
    /// A tensor short of bytes, metadata of another length, or the commit failing (an
    /// existing destination without `overwrite`). The temporary file is removed then.
    pub fn finish(
        mut self,
        metadata: &BTreeMap<String, String>,
        policy: CommitPolicy,
    ) -> Result<()> {
        if let Some(e) = self.next() {
            return Err(Error::tensor(
                TensorProblem::Writer,
                &e.name,
                format!(
                    "produced {} bytes, expected {}",
                    self.written,
                    e.nbytes().unwrap_or(usize::MAX)
                ),
            ));
        }
        if *metadata != self.draft {
            let fin = header(&self.entries, &self.order, metadata)?;
            if fin.len() != self.draft_len {
                return Err(Error::safetensors(
                    SafeTensorsProblem::Writer,
                    format!(
                        "final header is {} bytes, the draft {}",
                        fin.len(),
                        self.draft_len
                    ),
                ));
            }
            self.out.patch(8, &fin)?;
        }
        self.out.commit(policy.overwrite, policy.sync)
    }
}

/// Receives the chunks of one tensor.
pub type Sink<'s> = dyn FnMut(Chunk<'_>) -> Result<()> + 's;

/// [`SafetensorsWriter`] driven by closures: `produce(index, sink)` hands each tensor's bytes
/// to `sink`, `progress` is told the bytes written after each chunk, and `finalize` gives the
/// metadata the header ends with. Nothing is left at `dest` on error.
///
/// # Errors
///
/// As [`SafetensorsWriter`], and whatever the closures return.
#[allow(clippy::too_many_arguments)]
pub fn write_safetensors(
    dest: &Path,
    entries: &[Entry],
    metadata: &BTreeMap<String, String>,
    overwrite: bool,
    sync: bool,
    mut produce: impl FnMut(usize, &mut Sink<'_>) -> Result<()>,
    mut progress: impl FnMut(u64),
    finalize: impl FnOnce() -> Result<BTreeMap<String, String>>,
) -> Result<()> {
    let mut w = SafetensorsWriter::create(dest, entries.to_vec(), metadata)?;
    while let Some(i) = w.next_index() {
        let before = w.at;
        produce(i, &mut |chunk: Chunk<'_>| {
            let n = chunk.len();
            w.add(chunk)?;
            progress(n);
            Ok(())
        })?;
        if w.at == before {
            let e = &entries[i];
            return Err(Error::tensor(
                TensorProblem::Writer,
                &e.name,
                format!(
                    "produced {} bytes, expected {}",
                    w.written,
                    e.nbytes().unwrap_or(usize::MAX)
                ),
            ));
        }
    }
    let final_meta = finalize()?;
    w.finish(&final_meta, CommitPolicy { overwrite, sync })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, shape: &[usize]) -> Entry {
        Entry {
            name: name.into(),
            dtype: DType::U8,
            shape: shape.to_vec(),
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writer_takes_tensors_in_reference_order_and_skips_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.safetensors");
        let entries = vec![entry("b", &[2]), entry("empty", &[0, 3]), entry("a", &[3])];
        let mut w = SafetensorsWriter::create(&dest, entries, &BTreeMap::new()).unwrap();
        assert_eq!(w.next().unwrap().name, "a");
        w.add(Chunk::Bytes(vec![1, 2].into())).unwrap();
        w.add(Chunk::Bytes(vec![3].into())).unwrap();
        assert_eq!(w.next().unwrap().name, "b");
        let too_many = w.add(Chunk::Bytes(vec![0; 3].into())).unwrap_err();
        assert!(
            too_many.to_string().contains("more than its 2 bytes"),
            "{too_many}"
        );
        w.add(Chunk::Bytes(vec![4, 5].into())).unwrap();
        assert!(w.next().is_none());
        w.finish(&BTreeMap::new(), CommitPolicy::default()).unwrap();
        let bytes = std::fs::read(&dest).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("a").unwrap().data(), [1, 2, 3]);
        assert_eq!(st.tensor("b").unwrap().data(), [4, 5]);
        assert_eq!(st.tensor("empty").unwrap().shape(), [0, 3]);
        assert_eq!(files(dir.path()), ["out.safetensors"]);
    }

    /// `--force` replaces the file in one rename; the old one's blocks are freed off the
    /// caller's thread, which changes nothing on disk: no other name appears or is left, and a
    /// second name of the old file (a hard link) keeps the old bytes.
    #[test]
    fn replacing_holds_the_old_file_and_leaves_only_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let force = CommitPolicy {
            overwrite: true,
            sync: false,
        };
        std::fs::write(&dest, vec![7u8; 1 << 20]).unwrap();
        #[cfg(target_os = "linux")]
        {
            let held = hold_replaced(&dest).expect("a regular file with one name is held");
            std::fs::write(dir.path().join("other"), b"x").unwrap();
            std::os::unix::fs::symlink("other", dir.path().join("link")).unwrap();
            assert!(
                hold_replaced(&dir.path().join("link")).is_none(),
                "links not followed"
            );
            assert!(hold_replaced(dir.path()).is_none(), "folders not held");
            std::fs::remove_file(dir.path().join("link")).unwrap();
            std::fs::remove_file(dir.path().join("other")).unwrap();
            drop(held);
        }
        write_bytes(&dest, b"new", force).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(files(dir.path()), ["out.bin"]);
        let second = dir.path().join("second-name");
        std::fs::hard_link(&dest, &second).unwrap();
        #[cfg(target_os = "linux")]
        assert!(
            hold_replaced(&dest).is_none(),
            "a file with two names is not held"
        );
        write_bytes(&dest, b"newer", force).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"newer");
        assert_eq!(std::fs::read(&second).unwrap(), b"new");
        assert_eq!(files(dir.path()), ["out.bin", "second-name"]);
        remove_file_later(&second).unwrap();
        assert_eq!(files(dir.path()), ["out.bin"]);
        assert!(remove_file_later(&second).is_err());
    }

    #[test]
    fn unfinished_or_dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.safetensors");
        let mut w =
            SafetensorsWriter::create(&dest, vec![entry("a", &[4])], &BTreeMap::new()).unwrap();
        w.add(Chunk::Bytes(vec![1].into())).unwrap();
        let short = w
            .finish(&BTreeMap::new(), CommitPolicy::default())
            .unwrap_err();
        assert!(
            short.to_string().contains("produced 1 bytes, expected 4"),
            "{short}"
        );
        let w = SafetensorsWriter::create(&dest, vec![entry("a", &[4])], &BTreeMap::new());
        drop(w);
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn refused_names_create_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.safetensors");
        for (entries, says) in [
            (vec![entry(METADATA_KEY, &[1])], "reserves"),
            (vec![entry("a\rb", &[1])], "control characters"),
            (vec![entry("a", &[1]), entry("a", &[2])], "two tensors"),
            (vec![entry("a", &[usize::MAX, 2])], "overflows"),
        ] {
            let err = SafetensorsWriter::create(&dest, entries, &BTreeMap::new())
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
        // a header over the readers' 100 MB limit: 2 000 names of 50 000 characters
        let long: Vec<Entry> = (0..2000)
            .map(|i| entry(&format!("{i}{}", "x".repeat(50_000)), &[1]))
            .collect();
        let err = SafetensorsWriter::create(&dest, long, &BTreeMap::new())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("MAX_HEADER_BYTES"), "{err}");
        assert!(files(dir.path()).is_empty());
    }
}
