//! Reading checkpoints: sniff the container, run the safe unpickler, pick the state dict the way
//! timm's `load_state_dict` does, and describe every tensor without loading it.

pub(crate) mod crc;
mod legacy;
mod modules;
pub(crate) mod safetensors;
mod scan;
mod tree;
mod view;
mod zip;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Error, Result, TensorProblem};
pub use crate::pickle::{GlobalClass, GlobalRef};
// the unpickler's budgets (docs/security.md): every checkpoint is read within them
pub use crate::pickle::{
    MAX_DEPTH, MAX_LONG_BYTES, MAX_MEMO_ENTRIES, MAX_OBJECTS, MAX_PICKLE_BYTES, MAX_PICKLE_MEMORY,
    MAX_STACK, MAX_STRING_BYTES,
};
pub use modules::{modules, Module, MAX_MODULE_DEPTH};
pub use safetensors::{MAX_SAFETENSORS_METADATA_ENTRIES, MAX_SAFETENSORS_TENSORS};
pub use scan::{scan, scan_file, Finding, Problem, Scan};
use tree::Node;
pub use view::TensorInfo;

/// Most tensors one state dict may hold.
pub const MAX_TENSORS: usize = 1 << 20;

/// Default for [`OpenOptions::max_amplification`]: how many times its storage's bytes one
/// tensor may read (stride-0 views repeat elements), and how many times the bytes of all
/// storages the whole state dict may read, beyond [`AMPLIFICATION_FLOOR`]. torch's own saves
/// read each storage about once; a 635-byte file that describes a 2^62-byte view is refused.
pub const MAX_AMPLIFICATION: u64 = 16;

/// Logical bytes any tensor, and any state dict, may read regardless of its storages' size.
pub const AMPLIFICATION_FLOOR: u64 = 16 << 20;

/// The container a checkpoint came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `torch.save` zip archive (PyTorch >= 1.6).
    TorchZip,
    /// Legacy `torch.save` stream of pickles (before 1.6, or `_use_new_zipfile_serialization=False`).
    TorchLegacy,
    /// A safetensors file.
    SafeTensors,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::TorchZip => "torch.save zip",
            Format::TorchLegacy => "torch.save legacy",
            Format::SafeTensors => "safetensors",
        })
    }
}

/// How to pick the state dict inside a training checkpoint.
///
/// New options may be added: build it from [`Default`] with the setters.
///
/// ```
/// let opts = timmconv::OpenOptions::default().state_key("model").use_ema(false);
/// assert_eq!(opts.state_key.as_deref(), Some("model"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Prefer `state_dict_ema` and `model_ema` when present (timm's `use_ema`, default true).
    pub use_ema: bool,
    /// Take the state dict under this top-level key instead of choosing.
    pub state_key: Option<String>,
    /// How many times its storages' bytes a tensor, and the whole state dict, may read
    /// ([`MAX_AMPLIFICATION`] by default); raise it for checkpoints of expanded (stride-0)
    /// tensors.
    pub max_amplification: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            use_ema: true,
            state_key: None,
            max_amplification: MAX_AMPLIFICATION,
        }
    }
}

impl OpenOptions {
    /// Sets [`use_ema`](Self::use_ema).
    pub fn use_ema(mut self, yes: bool) -> Self {
        self.use_ema = yes;
        self
    }

    /// Sets [`state_key`](Self::state_key).
    pub fn state_key(mut self, key: impl Into<String>) -> Self {
        self.state_key = Some(key.into());
        self
    }

    /// Sets [`max_amplification`](Self::max_amplification).
    pub fn max_amplification(mut self, factor: u64) -> Self {
        self.max_amplification = factor;
        self
    }
}

/// A top-level or state-dict entry that is not a tensor, left out of the state dict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The entry's key.
    pub name: String,
    /// What kind of object it is.
    pub kind: String,
}

/// The bytes of a checkpoint: a read-only file mapping or an owned buffer.
enum Source {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Source {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Source::Mmap(m) => m,
            Source::Owned(v) => v,
        }
    }
}

#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private to this process. Another process truncating
    // the file while it is mapped could fault on access; that is the accepted contract of every
    // mmap-based reader (safetensors, candle) and the input is never written by timmconv.
    unsafe { memmap2::Mmap::map(file) }
}

/// Opens `path` and maps it read-only (an empty file is an empty buffer: it cannot be mapped).
/// Only regular files are read: a FIFO or a device could block forever or never end, and a
/// folder is a mistake. The type is checked before opening (opening a FIFO blocks until a
/// writer comes) and again on the opened file (the path could have been swapped meanwhile).
fn open_mapped(path: &Path) -> Result<(File, Source)> {
    // the one check every user-named file goes through (small_file): type from the metadata,
    // opened without blocking, type again on the descriptor
    let file = crate::small_file::open_existing(path)?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let len = meta.len();
    let source = if len == 0 {
        Source::Owned(Vec::new())
    } else {
        Source::Mmap(map_file(&file).map_err(|e| Error::io(path, e))?)
    };
    Ok((file, source))
}

/// Where a storage's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageLoc {
    /// `len` bytes at `start` in the source, read in place.
    Range { start: usize, len: usize },
    /// A deflated zip entry of `compressed` bytes at `start`, inflated on demand to `len`
    /// bytes with CRC-32 `crc`.
    Deflated {
        start: usize,
        compressed: usize,
        len: usize,
        crc: u32,
    },
}

/// How many times over, in all, the deflated storages of an archive may be inflated while it
/// is read (`MAX_INFLATED_BYTES` is this times their total size, plus [`AMPLIFICATION_FLOOR`]).
/// The last storage inflated is kept, so tensors that share it inflate it once; the budget
/// stops an archive whose tensors alternate between large storages.
pub const INFLATE_PASSES: u64 = 4;

impl StorageLoc {
    fn len(self) -> usize {
        match self {
            StorageLoc::Range { len, .. } | StorageLoc::Deflated { len, .. } => len,
        }
    }
}

/// What a container parser hands back.
struct Parsed {
    format: Format,
    protocol: Option<u8>,
    globals: Vec<GlobalRef>,
    root: Node,
    storages: HashMap<String, StorageLoc>,
    metadata: Option<BTreeMap<String, String>>,
    /// The zip members and their CRC-32s (empty for other formats).
    crc: crc::CrcTable,
}

/// An opened checkpoint: its container, the chosen state dict and its tensors (not loaded).
pub struct Checkpoint {
    path: Option<PathBuf>,
    file: Option<File>,
    source: Source,
    format: Format,
    protocol: Option<u8>,
    globals: Vec<GlobalRef>,
    state_key: Option<String>,
    top_level: Vec<String>,
    skipped: Vec<Skipped>,
    tensors: Vec<TensorInfo>,
    /// Position of each tensor in `tensors`, by name.
    index: HashMap<String, usize>,
    storages: HashMap<String, StorageLoc>,
    metadata: Option<BTreeMap<String, String>>,
    /// The storage inflated last (its `start`), kept for the next tensor that views it.
    inflated: Mutex<Option<(usize, Arc<Vec<u8>>)>>,
    /// Bytes that inflating may still produce (`MAX_INFLATED_BYTES`).
    inflate_budget: AtomicU64,
    /// The zip members' CRC-32s, checked as their bytes are read (empty for other formats).
    crc: crc::CrcTable,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("state_key", &self.state_key)
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

impl Checkpoint {
    /// Opens a checkpoint file (zip, legacy or safetensors), mapping it read-only.
    ///
    /// ```
    /// use timmconv::{Checkpoint, OpenOptions};
    /// let ckpt = Checkpoint::open("fixtures/ckpt/test_resnet.f32.zip.pth", &OpenOptions::default())?;
    /// let stem = ckpt.tensor("conv1.0.weight").expect("present");
    /// assert_eq!(stem.shape, [16, 3, 3, 3]);
    /// let bytes = ckpt.tensor_bytes(stem)?;
    /// assert_eq!(bytes.len(), 16 * 3 * 3 * 3 * 4);
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Checkpoint> {
        let path = path.as_ref();
        let (file, source) = open_mapped(path)?;
        let mut ckpt = Self::from_source(source, Some(&file), Some(path.to_path_buf()), opts)
            .map_err(|e| e.with_path(path))?;
        ckpt.file = Some(file);
        Ok(ckpt)
    }

    /// Opens a checkpoint held in memory.
    pub fn from_bytes(bytes: Vec<u8>, opts: &OpenOptions) -> Result<Checkpoint> {
        Self::from_source(Source::Owned(bytes), None, None, opts)
    }

    /// The container's bytes, whole (the map of a file, or the bytes it was opened from).
    pub(crate) fn raw_bytes(&self) -> &[u8] {
        &self.source
    }

    /// The bytes an in-memory checkpoint was opened from, to open them again (with another
    /// state dict); `None` for a file.
    pub(crate) fn into_bytes(self) -> Option<Vec<u8>> {
        match self.source {
            Source::Owned(bytes) => Some(bytes),
            Source::Mmap(_) => None,
        }
    }

    /// `file` is the opened file behind `source`, if any: the zip reader reads its headers
    /// with positioned reads there rather than through the map.
    fn from_source(
        source: Source,
        file: Option<&File>,
        path: Option<PathBuf>,
        opts: &OpenOptions,
    ) -> Result<Checkpoint> {
        let parsed = match sniff(&source)? {
            Format::TorchZip => zip::parse(&source, file)?,
            Format::TorchLegacy => legacy::parse(&source)?,
            Format::SafeTensors => safetensors::parse(&source)?,
        };
        let top_level = match &parsed.root {
            Node::Dict(items) => items
                .iter()
                .filter_map(|(k, _)| match k {
                    Node::Str(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let (state_key, state) = select_state_dict(&parsed.root, opts)?;
        let (tensors, skipped) = collect_tensors(state, state_key.as_deref())?;
        check_amplification(&tensors, opts.max_amplification)?;
        let deflated: u64 = parsed
            .storages
            .values()
            .filter_map(|loc| match loc {
                StorageLoc::Deflated { len, .. } => Some(*len as u64),
                StorageLoc::Range { .. } => None,
            })
            .fold(0, u64::saturating_add);
        let ckpt = Checkpoint {
            inflated: Mutex::new(None),
            inflate_budget: AtomicU64::new(
                deflated
                    .saturating_mul(INFLATE_PASSES)
                    .saturating_add(AMPLIFICATION_FLOOR),
            ),
            path,
            file: None,
            source,
            format: parsed.format,
            protocol: parsed.protocol,
            globals: parsed.globals,
            state_key,
            top_level,
            skipped,
            index: tensors
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect(),
            tensors,
            storages: parsed.storages,
            metadata: parsed.metadata,
            crc: parsed.crc,
        };
        for t in &ckpt.tensors {
            ckpt.check_storage(t)?;
        }
        Ok(ckpt)
    }

    fn check_storage(&self, t: &TensorInfo) -> Result<()> {
        let Some(loc) = self.storages.get(&t.storage) else {
            return Err(Error::tensor(
                TensorProblem::Storage,
                &t.name,
                format!("its storage `{}` is missing from the file", t.storage),
            ));
        };
        let need = t.storage_numel.checked_mul(t.dtype.size()).ok_or_else(|| {
            Error::tensor(TensorProblem::Storage, &t.name, "storage size overflows")
        })?;
        if loc.len() < need {
            return Err(Error::tensor(TensorProblem::Storage,
                &t.name,
                format!(
                    "storage `{}` declares {} elements of {} ({need} bytes) but the file holds {} bytes",
                    t.storage,
                    t.storage_numel,
                    t.dtype,
                    loc.len()
                ),
            ));
        }
        Ok(())
    }

    /// The file this checkpoint was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The highest pickle protocol seen (none for safetensors).
    pub fn protocol(&self) -> Option<u8> {
        self.protocol
    }

    /// Every global the pickle referenced, in order.
    pub fn globals(&self) -> &[GlobalRef] {
        &self.globals
    }

    /// The top-level key the state dict was taken from (`None`: the top level itself).
    pub fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    /// The string keys of the top-level dict, if the checkpoint is a dict.
    pub fn top_level_keys(&self) -> &[String] {
        &self.top_level
    }

    /// Entries of the state dict that are not tensors, left out.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The state dict's tensors, in the checkpoint's order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor with this (cleaned) key.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The tensor `name` as an [`ndarray`] array of `T`: a view borrowed from the file's mapping
    /// when the tensor is stored contiguously, uncompressed, aligned for `T` and of `T`'s dtype;
    /// an owned array when it is strided, deflated or unaligned, or when a floating tensor is
    /// cast to another floating `T` (f16/bf16 weights read as `f32`, say).
    ///
    /// ```
    /// use timmconv::{Checkpoint, OpenOptions};
    /// let ckpt = Checkpoint::open("fixtures/ckpt/test_resnet.f32.zip.pth", &OpenOptions::default())?;
    /// let stem = ckpt.array::<f32>("conv1.0.weight")?;
    /// assert_eq!(stem.shape(), [16, 3, 3, 3]);
    /// assert!(stem.is_view()); // straight from the mapping
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// No tensor of that name, an integer tensor asked for as another type, or a storage that
    /// cannot be read.
    pub fn array<T: crate::array::Element>(
        &self,
        name: &str,
    ) -> Result<ndarray::CowArray<'_, T, ndarray::IxDyn>> {
        let t = self
            .tensor(name)
            .ok_or_else(|| Error::NoSuchTensor(name.to_owned()))?;
        crate::array::to_array(&t.name, self.tensor_bytes(t)?, t.dtype, &t.shape)
    }

    /// The safetensors `__metadata__` of a safetensors input.
    pub fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref()
    }

    /// The whole input file's bytes.
    pub fn raw(&self) -> &[u8] {
        &self.source
    }

    /// Total elements over all tensors (saturating; the amplification limit keeps real sums
    /// far below `u64::MAX`).
    pub fn total_numel(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.numel() as u64))
    }

    /// Total bytes over all tensors (saturating, like [`Checkpoint::total_numel`]).
    pub fn total_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.nbytes() as u64))
    }

    /// The tensor's bytes in row-major order: borrowed from the file when it is stored
    /// contiguously, gathered or decompressed otherwise.
    pub fn tensor_bytes(&self, t: &TensorInfo) -> Result<Cow<'_, [u8]>> {
        self.check_storage(t)?;
        let loc = self.storages[&t.storage];
        match loc {
            StorageLoc::Range { start, len } => {
                let storage = start
                    .checked_add(len)
                    .and_then(|end| self.source.get(start..end))
                    .ok_or_else(|| {
                        Error::tensor(
                            TensorProblem::Storage,
                            &t.name,
                            "storage lies outside the file",
                        )
                    })?;
                // a tensor that reads its whole storage reads the whole member: check it
                if t.nbytes() == len {
                    self.crc.check_whole(start, storage)?;
                }
                t.gather(storage)
            }
            StorageLoc::Deflated {
                start,
                compressed,
                len,
                crc,
            } => {
                let storage = self
                    .inflate(start, compressed, len, crc)
                    .map_err(|e| match e {
                        Error::ZipCrc { .. } => e,
                        e => Error::tensor(TensorProblem::Storage, &t.name, e.to_string()),
                    })?;
                Ok(Cow::Owned(t.gather(&storage)?.into_owned()))
            }
        }
    }

    /// Inflates a deflated storage, or hands back the one inflated last.
    fn inflate(
        &self,
        start: usize,
        compressed: usize,
        len: usize,
        crc: u32,
    ) -> Result<Arc<Vec<u8>>> {
        let mut cache = self
            .inflated
            .lock()
            .map_err(|_| Error::Internal("a thread panicked while inflating".into()))?;
        if let Some((at, bytes)) = cache.as_ref() {
            if *at == start {
                return Ok(Arc::clone(bytes));
            }
        }
        // drop the previous storage before inflating the next: one is resident at a time
        *cache = None;
        let left = self.inflate_budget.load(Ordering::Relaxed);
        if len as u64 > left {
            return Err(Error::limit(
                "MAX_INFLATED_BYTES",
                "bytes inflated from the archive's deflated storages",
                len as u64,
                left,
            ));
        }
        self.inflate_budget
            .store(left - len as u64, Ordering::Relaxed);
        let name = self.crc.name_at(start).unwrap_or("a deflated storage");
        let bytes = Arc::new(zip::inflate(
            &self.source,
            start,
            compressed,
            len,
            crc,
            name,
        )?);
        *cache = Some((start, Arc::clone(&bytes)));
        Ok(bytes)
    }

    /// Reads every zip member not checked yet and checks its CRC-32, as Python's
    /// `zipfile.ZipFile.testzip()` does; nothing for other formats. Reading a tensor through
    /// this process checks its member when the tensor reads all of it, and a conversion that
    /// hashes its input checks every stored member from the same read, but a member copied
    /// by the kernel or read in part is only checked here, at the cost of reading it.
    ///
    /// ```
    /// use timmconv::{Checkpoint, OpenOptions};
    /// let ckpt = Checkpoint::open("fixtures/ckpt/test_resnet.f32.zip.pth", &OpenOptions::default())?;
    /// ckpt.check_crc()?;
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ZipCrc`] naming the first member whose bytes do not match, or an I/O error.
    pub fn check_crc(&self) -> Result<()> {
        self.crc
            .check_all(&self.source, self.file.as_ref())
            .map_err(|e| match &self.path {
                Some(p) => e.with_path(p),
                None => e,
            })
    }

    /// A CRC-32 feed for reads of this checkpoint's file in order (see [`crc::CrcFeed`]).
    pub(crate) fn crc_feed(&self) -> crc::CrcFeed<'_> {
        self.crc.feed()
    }

    /// The open input file (`None` for in-memory checkpoints).
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// Like [`Checkpoint::tensor_bytes`], but a contiguous tensor of a file is read with `pread`
    /// into a new buffer instead of through the mapping, so that converting a large file does
    /// not leave it all resident in this process.
    pub fn tensor_bytes_buffered(&self, t: &TensorInfo) -> Result<Cow<'_, [u8]>> {
        if let (Some(file), Some(range)) = (&self.file, self.tensor_file_range(t)) {
            let mut buf = vec![0u8; range.len()];
            crate::fileio::read_exact_at(file, &mut buf, range.start as u64).map_err(|e| {
                Error::tensor(
                    TensorProblem::Read,
                    &t.name,
                    format!(
                        "reading {} bytes at offset {}: {e}",
                        range.len(),
                        range.start
                    ),
                )
            })?;
            self.crc.check_whole(range.start, &buf)?;
            return Ok(Cow::Owned(buf));
        }
        self.tensor_bytes(t)
    }

    /// Whether a tensor can be copied straight from the file (contiguous, stored uncompressed);
    /// returns its byte range in the file.
    pub fn tensor_file_range(&self, t: &TensorInfo) -> Option<std::ops::Range<usize>> {
        match self.storages.get(&t.storage)? {
            StorageLoc::Range { start, .. } if t.is_contiguous() => {
                let begin = start + t.offset * t.dtype.size();
                Some(begin..begin + t.nbytes())
            }
            _ => None,
        }
    }
}

/// Tells the container from the first bytes.
fn sniff(bytes: &[u8]) -> Result<Format> {
    match bytes {
        [] => Err(Error::UnknownFormat("the file is empty".into())),
        // torch.load takes a file for a zip only by these first four bytes
        [b'P', b'K', 3, 4, ..] => Ok(Format::TorchZip),
        // torch.load tries Python's tarfile before reading pickles, and tarfile takes any block
        // whose checksum adds up as a header, magic or not, whatever its first bytes
        _ if is_tar(bytes) => Err(Error::UnsupportedFormat(
            "this is the tar-based torch.save format of PyTorch < 0.4; load and re-save it with \
             a newer torch, or convert it with safetensors"
                .into(),
        )),
        // an empty archive (an end record alone), which torch.load does not read as a zip
        [b'P', b'K', 5, 6, ..] => Ok(Format::TorchZip),
        [0x80, 2..=5, ..] => Ok(Format::TorchLegacy),
        [a, b, c, d, e, f, g, h, b'{', ..] => {
            let n = u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]);
            if n < bytes.len() as u64 {
                Ok(Format::SafeTensors)
            } else {
                Err(Error::UnknownFormat(format!(
                    "looks like safetensors but its header claims {n} bytes and the file has {}",
                    bytes.len()
                )))
            }
        }
        [first, ..] => Err(Error::UnknownFormat(format!(
            "expected a torch.save zip (\"PK\\x03\\x04\"), a legacy torch.save pickle (0x80 0x02) or \
             safetensors (8-byte header size, then '{{') at offset 0, found byte 0x{first:02x}"
        ))),
    }
}

/// Whether Python's `tarfile` (which `torch.load` tries first on any file that is not a zip)
/// would take the first 512 bytes as a tar header: not all zero, and the checksum field (octal
/// text, or base-256) equal to the sum of the block's bytes with that field read as spaces,
/// unsigned or signed. No magic is needed (V7 headers have none). Read leniently (underscores,
/// a `0o` prefix, surrounding whitespace), so anything tarfile accepts is caught.
pub(crate) fn is_tar(bytes: &[u8]) -> bool {
    let Some(block) = bytes.get(..512) else {
        return false;
    };
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let declared: Option<i128> = match field[0] {
        0o200 | 0o377 => {
            let n = field[1..]
                .iter()
                .fold(0i128, |n, &b| (n << 8) | i128::from(b));
            Some(if field[0] == 0o377 {
                n - (1i128 << 56)
            } else {
                n
            })
        }
        _ => {
            let text = field.split(|&b| b == 0).next().unwrap_or_default();
            let is_space =
                |b: &u8| b.is_ascii_whitespace() || (0x1c..=0x1f).contains(b) || *b == 0x0b;
            let start = text.iter().position(|b| !is_space(b)).unwrap_or(text.len());
            let end = text
                .iter()
                .rposition(|b| !is_space(b))
                .map_or(start, |e| e + 1);
            let mut t = &text[start..end.max(start)];
            let negative = t.first() == Some(&b'-');
            if matches!(t.first(), Some(b'-' | b'+')) {
                t = &t[1..];
            }
            if t.len() > 1 && t[0] == b'0' && matches!(t[1], b'o' | b'O') {
                t = &t[2..];
            }
            let mut n: i128 = 0;
            let mut ok = true;
            for &b in t {
                match b {
                    b'0'..=b'7' => n = n.saturating_mul(8).saturating_add(i128::from(b - b'0')),
                    b'_' => {}
                    _ => ok = false,
                }
            }
            ok.then_some(if negative { -n } else { n })
        }
    };
    let Some(declared) = declared else {
        return false;
    };
    let rest = block[..148].iter().chain(&block[156..]);
    let unsigned: i128 = 256 + rest.clone().map(|&b| i128::from(b)).sum::<i128>();
    let signed: i128 = 256 + rest.map(|&b| i128::from(b as i8)).sum::<i128>();
    declared == unsigned || declared == signed
}

/// timm's choice: `state_dict_ema` > `model_ema` (when `use_ema`) > `state_dict` > `model`.
fn select_state_dict<'n>(root: &'n Node, opts: &OpenOptions) -> Result<(Option<String>, &'n Node)> {
    let Node::Dict(items) = root else {
        return if opts.state_key.is_some() {
            Err(crate::error::Setting::StateKeyNotDict { kind: root.kind() }.into())
        } else {
            Ok((None, root))
        };
    };
    if let Some(key) = &opts.state_key {
        return match root.get(key) {
            Some(node) => Ok((Some(key.clone()), node)),
            None => Err(Error::NoSuchStateKey {
                key: key.clone(),
                available: items
                    .iter()
                    .map(|(k, _)| match k {
                        Node::Str(s) => s.to_string(),
                        other => other.kind(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        };
    }
    let present_non_null = |k: &str| root.get(k).is_some_and(|n| *n != Node::None);
    let key = if opts.use_ema && present_non_null("state_dict_ema") {
        Some("state_dict_ema")
    } else if opts.use_ema && present_non_null("model_ema") {
        Some("model_ema")
    } else if root.get("state_dict").is_some() {
        Some("state_dict")
    } else if root.get("model").is_some() {
        Some("model")
    } else {
        None
    };
    Ok(match key {
        Some(k) => (Some(k.to_owned()), root.get(k).unwrap_or(&Node::None)),
        None => (None, root),
    })
}

/// Refuses tensors that read far more bytes than their storages hold (see
/// [`MAX_AMPLIFICATION`]). Every size here was checked to fit a `usize` by `validate`.
fn check_amplification(tensors: &[TensorInfo], factor: u64) -> Result<()> {
    let allowed = |storage_bytes: u64| {
        storage_bytes
            .saturating_mul(factor)
            .max(AMPLIFICATION_FLOOR)
    };
    let mut storages: HashMap<&str, u64> = HashMap::new();
    let mut total = 0u64;
    for t in tensors {
        let storage_bytes = (t.storage_numel as u64).saturating_mul(t.dtype.size() as u64);
        let bytes = t.nbytes() as u64;
        if bytes > allowed(storage_bytes) {
            return Err(Error::Amplified {
                key: t.name.clone(),
                bytes,
                storage_bytes,
                shape: t.shape.clone(),
                strides: t.strides.clone(),
                factor,
            });
        }
        storages.insert(&t.storage, storage_bytes);
        total = total.saturating_add(bytes);
    }
    let stored = storages.values().fold(0u64, |a, &b| a.saturating_add(b));
    if total > allowed(stored) {
        return Err(Error::limit(
            "MAX_AMPLIFICATION",
            format!("bytes read by all tensors from {stored} bytes of storages"),
            total,
            allowed(stored),
        ));
    }
    Ok(())
}

/// timm's `clean_state_dict`: strips `_orig_mod.` / `module.` / `_orig_mod.` in that order.
pub fn clean_key(key: &str) -> &str {
    const PREFIXES: [&str; 3] = ["_orig_mod.", "module.", "_orig_mod."];
    if !PREFIXES.iter().any(|p| key.starts_with(p)) {
        return key;
    }
    PREFIXES
        .iter()
        .fold(key, |k, p| k.strip_prefix(p).unwrap_or(k))
}

fn collect_tensors(
    state: &Node,
    state_key: Option<&str>,
) -> Result<(Vec<TensorInfo>, Vec<Skipped>)> {
    let where_ = || match state_key {
        Some(k) => format!("`{k}`"),
        None => "the checkpoint".to_owned(),
    };
    let Node::Dict(items) = state else {
        return Err(Error::Structure(format!(
            "{} is a {}, not a state dict",
            where_(),
            state.kind()
        )));
    };
    if items.len() > MAX_TENSORS {
        return Err(Error::limit(
            "MAX_TENSORS",
            "entries in the state dict",
            items.len() as u64,
            MAX_TENSORS as u64,
        ));
    }
    let mut tensors: Vec<TensorInfo> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut skipped = Vec::new();
    for (k, v) in items.iter() {
        let Node::Str(raw) = k else {
            return Err(Error::Structure(format!(
                "{} has a {} key; a state dict has string keys",
                where_(),
                k.kind()
            )));
        };
        let name = clean_key(raw).to_owned();
        let t = match v {
            Node::Tensor(t) => t,
            Node::Unsupported(what) => {
                return Err(Error::tensor(
                    TensorProblem::Unsupported,
                    raw.to_string(),
                    format!(
                        "{what} tensors (complex, quantized, sparse, nested) are not supported"
                    ),
                ))
            }
            other => {
                skipped.push(Skipped {
                    name,
                    kind: other.kind(),
                });
                continue;
            }
        };
        let mut info = TensorInfo {
            name: name.clone(),
            dtype: t.storage.dtype,
            shape: t.shape.clone(),
            strides: t.stride.clone(),
            offset: t.offset,
            storage: t.storage.key.clone(),
            storage_numel: t.storage.numel,
            shared: false,
        };
        // a legacy view storage: torch checks the tensor against the view's own size
        if let Some((view_offset, view_numel)) = t.storage.view {
            TensorInfo {
                storage_numel: view_numel,
                ..info.clone()
            }
            .validate()?;
            info.offset = info.offset.checked_add(view_offset).ok_or_else(|| {
                Error::tensor(TensorProblem::View, &info.name, "storage offset overflows")
            })?;
        }
        info.validate()?;
        // a Python dict keeps the first position and the last value of a repeated key
        match index.get(&name) {
            Some(&i) => tensors[i] = info,
            None => {
                index.insert(name, tensors.len());
                tensors.push(info);
            }
        }
    }
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for t in &tensors {
        *uses.entry(t.storage.as_str()).or_default() += 1;
    }
    let shared: Vec<bool> = tensors
        .iter()
        .map(|t| uses[t.storage.as_str()] > 1)
        .collect();
    for (t, s) in tensors.iter_mut().zip(shared) {
        t.shared = s;
    }
    Ok((tensors, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_key_matches_timm() {
        assert_eq!(clean_key("module.conv1.weight"), "conv1.weight");
        assert_eq!(clean_key("_orig_mod.module.fc.bias"), "fc.bias");
        assert_eq!(clean_key("module._orig_mod.fc.bias"), "fc.bias");
        assert_eq!(clean_key("fc.module.bias"), "fc.module.bias");
        assert_eq!(clean_key("modules.x"), "modules.x");
    }

    #[test]
    fn sniff_names_what_it_expected() {
        let err = sniff(b"hello world").unwrap_err().to_string();
        assert!(err.contains("offset 0"), "{err}");
        assert!(matches!(sniff(b""), Err(Error::UnknownFormat(_))));
    }
}
