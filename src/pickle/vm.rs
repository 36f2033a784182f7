//! The pickle virtual machine: decodes opcodes into [`Value`]s without importing or calling
//! anything, under named resource limits.

use std::collections::HashMap;
use std::rc::Rc;

use super::opcode as op;
use super::torch::{self, Global, GlobalClass};
use super::value::{Arena, CallExtra, ObjId, Object, Value};
use crate::error::{Budget, Error, Result};

/// Largest pickle stream accepted (`data.pkl`, or one legacy pickle). A state dict of 100 000
/// tensors pickles to about 15 MB.
pub const MAX_PICKLE_BYTES: usize = 64 << 20;
/// Most bytes of memory one pickle may make the VM hold: every container item, object, memo
/// entry and string it creates is charged (and never refunded), so any pickle costs at most
/// this much whatever its shape: a pickle that is mostly `None`s, memo entries or copies of one
/// string is refused here, not after it filled the machine.
pub const MAX_PICKLE_MEMORY: usize = 128 << 20;
/// Most memo entries one pickle may create.
pub const MAX_MEMO_ENTRIES: usize = 8 << 20;
/// Most objects (containers and calls) one pickle may create.
pub const MAX_OBJECTS: usize = 16 << 20;
/// Most values on the stack at once.
pub const MAX_STACK: usize = 1 << 20;
/// Deepest nesting of MARKs, and of containers when the result is walked.
pub const MAX_DEPTH: usize = 512;
/// Longest string or bytes value.
pub const MAX_STRING_BYTES: usize = 256 << 20;
/// Longest integer encoding (LONG1/LONG4, or the digits of a text INT/LONG), in bytes.
pub const MAX_LONG_BYTES: usize = 1 << 10;

/// A global the pickle referenced, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRef {
    /// Module part.
    pub module: String,
    /// Name part.
    pub name: String,
    /// Byte offset of the opcode that referenced it.
    pub offset: usize,
    /// Its classification.
    pub class: GlobalClass,
}

/// The result of running one pickle.
#[derive(Debug)]
pub struct Unpickled {
    /// The value STOP returned.
    pub value: Value,
    /// Every container the pickle built.
    pub arena: Arena,
    /// Every global referenced, in order.
    pub globals: Vec<GlobalRef>,
    /// Offset just past the STOP opcode.
    pub end: usize,
    /// Highest protocol seen in a PROTO opcode (0 when none).
    pub protocol: u8,
}

/// Whether a forbidden global stops the run (load) or is only recorded (scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse at the first global not on the allowlist.
    Load,
    /// Record every global, refusing none; the result must not be used to load tensors.
    Scan,
}

/// Runs the pickle that starts at `start` in `data`.
pub fn unpickle(data: &[u8], start: usize, mode: Mode) -> Result<Unpickled> {
    let mut vm = Vm::new(data, start, mode);
    let value = vm.run()?;
    Ok(Unpickled {
        value,
        arena: vm.arena,
        globals: vm.globals,
        end: vm.pos,
        protocol: vm.protocol,
    })
}

/// What a scan of one pickle saw: every global referenced up to where it stopped, and why it
/// stopped early if it did. Python's unpickler runs each global as it reaches it, so the
/// globals before a parse error count as much as a clean run's.
#[derive(Debug)]
pub struct Scanned {
    /// Every global referenced before the end or the error, in order.
    pub globals: Vec<GlobalRef>,
    /// Offset just past STOP, or the error that ended the run first.
    pub end: Result<usize>,
}

/// Runs the pickle at `start` in scan mode, keeping what it saw even when it fails.
pub fn scan_pickle(data: &[u8], start: usize) -> Scanned {
    let mut vm = Vm::new(data, start, Mode::Scan);
    let end = vm.run().map(|_| vm.pos);
    Scanned {
        globals: vm.globals,
        end,
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    start: usize,
    mode: Mode,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    arena: Arena,
    globals: Vec<GlobalRef>,
    protocol: u8,
    /// Bytes held, charged against [`MAX_PICKLE_MEMORY`].
    memory: Budget,
    /// The end of the furthest frame a FRAME opcode declared.
    frame_end: usize,
}

/// What one memo entry costs in the hash map (key, value, control byte, and the slack of a
/// table that doubles when full).
const MEMO_ENTRY_COST: usize = 80;

impl<'a> Vm<'a> {
    fn new(data: &'a [u8], start: usize, mode: Mode) -> Self {
        Vm {
            data,
            pos: start,
            start,
            mode,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            arena: Arena::default(),
            globals: Vec::new(),
            protocol: 0,
            frame_end: 0,
            memory: Budget::new("MAX_PICKLE_MEMORY", MAX_PICKLE_MEMORY),
        }
    }

    /// Charges `bytes` of memory the VM is about to hold.
    fn charge(&mut self, bytes: usize, at: usize) -> Result<()> {
        self.memory.charge(bytes, || {
            format!("memory for the objects built by the pickle, at offset {at}")
        })
    }

    /// Charges `n` values stored in a container.
    fn charge_values(&mut self, n: usize, at: usize) -> Result<()> {
        self.charge(n.saturating_mul(std::mem::size_of::<Value>()), at)
    }
    fn err(&self, offset: usize, what: impl Into<String>) -> Error {
        Error::Pickle {
            offset,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(self.err(
                at,
                format!(
                    "truncated: needs {n} bytes, {} left",
                    self.data.len().saturating_sub(self.pos)
                ),
            ));
        };
        let data: &'a [u8] = self.data;
        let bytes = &data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self, at: usize) -> Result<[u8; N]> {
        let bytes = self.take(N, at)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, at: usize) -> Result<u8> {
        Ok(self.take_array::<1>(at)?[0])
    }

    fn u32(&mut self, at: usize) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take_array(at)?))
    }

    fn len_u32(&mut self, at: usize) -> Result<usize> {
        let n = self.u32(at)?;
        usize::try_from(n).map_err(|_| self.err(at, "length does not fit in memory"))
    }

    fn len_u64(&mut self, at: usize) -> Result<usize> {
        let n = u64::from_le_bytes(self.take_array(at)?);
        usize::try_from(n).map_err(|_| self.err(at, format!("length {n} does not fit in memory")))
    }

    /// A length-prefixed payload; the length is checked against the bytes left first.
    fn payload(&mut self, n: usize, at: usize, limit: usize, what: &str) -> Result<&'a [u8]> {
        if n > limit {
            return Err(Error::limit(
                "MAX_STRING_BYTES",
                format!("{what} at pickle offset {at}"),
                n as u64,
                limit as u64,
            ));
        }
        self.take(n, at)
    }

    fn line(&mut self, at: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or_default();
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err(at, "truncated: text argument has no newline"));
        };
        if nl > MAX_STRING_BYTES {
            return Err(Error::limit(
                "MAX_STRING_BYTES",
                format!("text line at pickle offset {at}"),
                nl as u64,
                MAX_STRING_BYTES as u64,
            ));
        }
        let line = &rest[..nl];
        self.pos += nl + 1;
        Ok(line)
    }

    fn line_str(&mut self, at: usize) -> Result<String> {
        let line = self.line(at)?;
        match std::str::from_utf8(line) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.err(at, "text argument is not UTF-8")),
        }
    }

    fn utf8(&mut self, bytes: &[u8], at: usize) -> Result<Rc<str>> {
        self.charge(bytes.len().saturating_add(16), at)?;
        std::str::from_utf8(bytes)
            .map(Rc::from)
            .map_err(|_| self.err(at, "string is not valid UTF-8"))
    }

    fn push(&mut self, v: Value, at: usize) -> Result<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(Error::limit(
                "MAX_STACK",
                format!("pickle stack at offset {at}"),
                self.stack.len() as u64 + 1,
                MAX_STACK as u64,
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, at: usize) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err(at, "stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err(at, "stack underflow"))
    }

    fn top(&self, at: usize) -> Result<&Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err(at, "stack underflow"));
        }
        self.stack
            .last()
            .ok_or_else(|| self.err(at, "stack underflow"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.err(at, "no MARK on the stack"));
        };
        Ok(self.stack.split_off(mark))
    }

    fn new_obj(&mut self, obj: Object, at: usize) -> Result<Value> {
        if self.arena.len() >= MAX_OBJECTS {
            return Err(Error::limit(
                "MAX_OBJECTS",
                format!("objects built by the pickle at offset {at}"),
                self.arena.len() as u64 + 1,
                MAX_OBJECTS as u64,
            ));
        }
        let items = match &obj {
            Object::List(v) | Object::Tuple(v) | Object::Set(v) => v.len(),
            Object::Dict(v) => v.len().saturating_mul(2),
            Object::PersId(_) | Object::Call { .. } => 0,
        };
        self.charge(std::mem::size_of::<Object>(), at)?;
        self.charge_values(items, at)?;
        let id = self
            .arena
            .push(obj)
            .ok_or_else(|| self.err(at, "too many objects"))?;
        Ok(Value::Obj(id))
    }

    /// The boxed extra state of a call object, created on first use.
    fn call_extra(&mut self, v: &Value, at: usize, opname: &str) -> Result<&mut CallExtra> {
        let fresh = matches!(
            self.obj_mut(v, at, opname)?,
            Object::Call { extra: None, .. }
        );
        if fresh {
            self.charge(std::mem::size_of::<CallExtra>(), at)?;
        }
        let what = format!("{opname} on a value that is not an object");
        match self.obj_mut(v, at, opname)? {
            Object::Call { extra, .. } => Ok(extra.get_or_insert_with(Box::default)),
            _ => Err(Error::Pickle { offset: at, what }),
        }
    }

    fn obj_mut(&mut self, v: &Value, at: usize, opname: &str) -> Result<&mut Object> {
        let Value::Obj(id) = v else {
            return Err(self.err(at, format!("{opname} on a value that is not a container")));
        };
        let id: ObjId = *id;
        match self.arena.get_mut(id) {
            Some(o) => Ok(o),
            None => Err(Error::Pickle {
                offset: at,
                what: format!("{opname} on a dangling object"),
            }),
        }
    }

    fn memo_put(&mut self, key: u32, v: Value, at: usize) -> Result<()> {
        if !self.memo.contains_key(&key) {
            if self.memo.len() >= MAX_MEMO_ENTRIES {
                return Err(Error::limit(
                    "MAX_MEMO_ENTRIES",
                    format!("memo entries at pickle offset {at}"),
                    self.memo.len() as u64 + 1,
                    MAX_MEMO_ENTRIES as u64,
                ));
            }
            self.charge(MEMO_ENTRY_COST, at)?;
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&self, key: u32, at: usize) -> Result<Value> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.err(at, format!("memo key {key} was never stored")))
    }

    fn global(&mut self, module: &str, name: &str, at: usize) -> Result<Value> {
        let class = torch::classify(module, name);
        self.charge(module.len() + name.len() + 64, at)?;
        self.globals.push(GlobalRef {
            module: module.to_owned(),
            name: name.to_owned(),
            offset: at,
            class,
        });
        match torch::resolve(module, name) {
            Some(g) => Ok(Value::Global(Rc::new(g))),
            None if self.mode == Mode::Scan => Ok(Value::Global(Rc::new(Global::Forbidden(
                format!("{module}.{name}"),
            )))),
            None => Err(Error::ForbiddenGlobal {
                module: module.to_owned(),
                name: name.to_owned(),
                offset: at,
            }),
        }
    }

    /// A call node; `args` must be a tuple in the arena (it is referenced, not copied).
    fn call(
        &mut self,
        func: Value,
        args: Value,
        kwargs: Option<Value>,
        at: usize,
    ) -> Result<Value> {
        if !matches!(self.arena.object(&args), Some(Object::Tuple(_))) {
            return Err(self.err(at, "call arguments are not a tuple"));
        }
        // a scan only lists globals, so it describes calls of anything (getattr(...)(...))
        if !matches!(func, Value::Global(_)) && self.mode == Mode::Load {
            return Err(self.err(at, "call of a value that is not an allowlisted global"));
        }
        let v = self.new_obj(
            Object::Call {
                func,
                args,
                extra: None,
            },
            at,
        )?;
        if let Some(kwargs) = kwargs {
            self.call_extra(&v, at, "NEWOBJ_EX")?.kwargs = Some(kwargs);
        }
        Ok(v)
    }

    /// A call whose arguments come from the stack (INST, OBJ): they become a tuple first.
    fn call_with(&mut self, func: Value, args: Vec<Value>, at: usize) -> Result<Value> {
        let args = self.new_obj(Object::Tuple(args), at)?;
        self.call(func, args, None, at)
    }

    fn int_from_le(&mut self, bytes: &[u8], at: usize) -> Result<Value> {
        if bytes.len() > MAX_LONG_BYTES {
            return Err(Error::limit(
                "MAX_LONG_BYTES",
                format!("integer at pickle offset {at}"),
                bytes.len() as u64,
                MAX_LONG_BYTES as u64,
            ));
        }
        if bytes.len() <= 8 {
            let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
            let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
            buf[..bytes.len()].copy_from_slice(bytes);
            Ok(Value::Int(i64::from_le_bytes(buf)))
        } else {
            self.charge(bytes.len() + 16, at)?;
            Ok(Value::BigInt(Rc::from(bytes)))
        }
    }

    /// A text INT or LONG read as CPython's C unpickler reads it. INT: `strtol(s, &end, 0)`,
    /// so `010` is octal 8 and `0x8` is 8, a line of exactly two characters holding 0 or 1 is a
    /// bool, and anything strtol does not consume to the end goes to `int(s, 0)`. LONG: one
    /// trailing `L` dropped, then `int(s, 0)`, which refuses `010`. Of `int(s, 0)` only plain
    /// decimals are read here (no underscores, no base prefixes); anything else is refused, so
    /// no integer is ever read differently from torch.
    fn parse_text_int(&mut self, text: &str, at: usize, long: bool) -> Result<Value> {
        if text.len() > MAX_LONG_BYTES {
            return Err(Error::limit(
                "MAX_LONG_BYTES",
                format!("digits of the integer at pickle offset {at}"),
                text.len() as u64,
                MAX_LONG_BYTES as u64,
            ));
        }
        if long {
            let t = text.strip_suffix('L').unwrap_or(text);
            return self.python_int(t, at);
        }
        match strtol(text) {
            Some(x) if text.len() == 2 && (x == 0 || x == 1) => Ok(Value::Bool(x == 1)),
            Some(x) => Ok(Value::Int(x)),
            None => self.python_int(text, at),
        }
    }

    /// `int(s, 0)` for plain decimals: surrounding whitespace, a sign, digits without a leading
    /// zero (unless all are zeros).
    fn python_int(&mut self, text: &str, at: usize) -> Result<Value> {
        let t = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        let plain = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (!digits.starts_with('0') || digits.bytes().all(|b| b == b'0'));
        if !plain {
            return Err(self.err(
                at,
                format!(
                    "bad integer literal {text:?} (CPython reads text integers with base 0: a \
                     leading zero, a base prefix or an underscore is read differently or refused)"
                ),
            ));
        }
        match t.parse::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => {
                self.charge(t.len() + 16, at)?;
                Ok(Value::BigInt(Rc::from(t.as_bytes())))
            }
        }
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            if at - self.start > MAX_PICKLE_BYTES {
                return Err(Error::limit(
                    "MAX_PICKLE_BYTES",
                    "pickle size",
                    (at - self.start) as u64,
                    MAX_PICKLE_BYTES as u64,
                ));
            }
            let Some(&code) = self.data.get(at) else {
                return Err(self.err(at, "truncated: ended before STOP"));
            };
            self.pos += 1;
            match code {
                op::PROTO => {
                    let p = self.u8(at)?;
                    if p > 5 {
                        return Err(self.err(at, format!("unsupported pickle protocol {p}")));
                    }
                    self.protocol = self.protocol.max(p);
                }
                op::FRAME => {
                    let n = self.len_u64(at)?;
                    if n > self.data.len() - self.pos {
                        return Err(self.err(at, format!("frame of {n} bytes runs past the end")));
                    }
                    self.frame_end = self.frame_end.max(self.pos + n);
                }
                op::STOP => {
                    // CPython's unpickler reads a large frame from the file whole: a STOP before
                    // the frame's end leaves the file after the frame, where torch.load reads
                    // the next pickle of a legacy file (pickle's writer ends each frame at STOP)
                    if self.frame_end > self.pos {
                        return Err(self.err(
                            at,
                            format!(
                                "STOP inside a frame that runs on to offset {}: Python reads the \
                                 whole frame, so what follows the STOP is not what it reads next",
                                self.frame_end
                            ),
                        ));
                    }
                    let v = self.pop(at)?;
                    return Ok(v);
                }
                op::MARK => {
                    if self.marks.len() >= MAX_DEPTH {
                        return Err(Error::limit(
                            "MAX_DEPTH",
                            format!("MARK nesting at pickle offset {at}"),
                            self.marks.len() as u64 + 1,
                            MAX_DEPTH as u64,
                        ));
                    }
                    self.marks.push(self.stack.len());
                }
                op::POP => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.pop_mark(at)?;
                    } else {
                        self.pop(at)?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark(at)?;
                }
                op::DUP => {
                    let v = self.top(at)?.clone();
                    self.push(v, at)?;
                }
                op::NONE => self.push(Value::None, at)?,
                op::NEWTRUE => self.push(Value::Bool(true), at)?,
                op::NEWFALSE => self.push(Value::Bool(false), at)?,
                op::BININT => {
                    let v = i32::from_le_bytes(self.take_array(at)?);
                    self.push(Value::Int(i64::from(v)), at)?;
                }
                op::BININT1 => {
                    let v = self.u8(at)?;
                    self.push(Value::Int(i64::from(v)), at)?;
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.take_array(at)?);
                    self.push(Value::Int(i64::from(v)), at)?;
                }
                op::LONG1 => {
                    let n = usize::from(self.u8(at)?);
                    let bytes = self.take(n, at)?.to_vec();
                    let v = self.int_from_le(&bytes, at)?;
                    self.push(v, at)?;
                }
                op::LONG4 => {
                    let n = i32::from_le_bytes(self.take_array(at)?);
                    let n = usize::try_from(n)
                        .map_err(|_| self.err(at, "LONG4 with a negative length"))?;
                    if n > MAX_LONG_BYTES {
                        return Err(Error::limit(
                            "MAX_LONG_BYTES",
                            format!("integer at pickle offset {at}"),
                            n as u64,
                            MAX_LONG_BYTES as u64,
                        ));
                    }
                    let bytes = self.take(n, at)?.to_vec();
                    let v = self.int_from_le(&bytes, at)?;
                    self.push(v, at)?;
                }
                op::INT | op::LONG => {
                    let text = self.line_str(at)?;
                    let v = self.parse_text_int(&text, at, code == op::LONG)?;
                    self.push(v, at)?;
                }
                op::FLOAT => {
                    let text = self.line_str(at)?;
                    let f = text
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| self.err(at, format!("bad float literal {text:?}")))?;
                    self.push(Value::Float(f), at)?;
                }
                op::BINFLOAT => {
                    let f = f64::from_be_bytes(self.take_array(at)?);
                    self.push(Value::Float(f), at)?;
                }
                op::SHORT_BINUNICODE => {
                    let n = usize::from(self.u8(at)?);
                    let bytes = self.take(n, at)?;
                    let s = self.utf8(bytes, at)?;
                    self.push(Value::Str(s), at)?;
                }
                op::BINUNICODE | op::BINUNICODE8 => {
                    let n = if code == op::BINUNICODE {
                        self.len_u32(at)?
                    } else {
                        self.len_u64(at)?
                    };
                    let bytes = self.payload(n, at, MAX_STRING_BYTES, "string")?;
                    let s = self.utf8(bytes, at)?;
                    self.push(Value::Str(s), at)?;
                }
                op::UNICODE => {
                    let line = self.line(at)?.to_vec();
                    let s = decode_raw_unicode_escape(&line)
                        .ok_or_else(|| self.err(at, "bad raw-unicode-escape string"))?;
                    self.charge(s.len() + 16, at)?;
                    self.push(Value::Str(Rc::from(s)), at)?;
                }
                op::STRING => {
                    let line = self.line(at)?.to_vec();
                    let inner = match line.as_slice() {
                        [b'\'', inner @ .., b'\''] | [b'"', inner @ .., b'"'] => inner,
                        _ => return Err(self.err(at, "STRING argument is not quoted")),
                    };
                    self.charge(inner.len() + 16, at)?;
                    self.push(Value::Bytes(Rc::from(inner)), at)?;
                }
                op::SHORT_BINSTRING | op::SHORT_BINBYTES => {
                    let n = usize::from(self.u8(at)?);
                    let bytes = self.take(n, at)?;
                    self.charge(n + 16, at)?;
                    self.push(Value::Bytes(Rc::from(bytes)), at)?;
                }
                op::BINSTRING => {
                    let n = i32::from_le_bytes(self.take_array(at)?);
                    let n = usize::try_from(n)
                        .map_err(|_| self.err(at, "BINSTRING with a negative length"))?;
                    let bytes = self.payload(n, at, MAX_STRING_BYTES, "string")?;
                    self.charge(n + 16, at)?;
                    self.push(Value::Bytes(Rc::from(bytes)), at)?;
                }
                op::BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = if code == op::BINBYTES {
                        self.len_u32(at)?
                    } else {
                        self.len_u64(at)?
                    };
                    let bytes = self.payload(n, at, MAX_STRING_BYTES, "bytes")?;
                    self.charge(n + 16, at)?;
                    self.push(Value::Bytes(Rc::from(bytes)), at)?;
                }
                op::EMPTY_LIST => {
                    let v = self.new_obj(Object::List(Vec::new()), at)?;
                    self.push(v, at)?;
                }
                op::EMPTY_TUPLE => {
                    let v = self.new_obj(Object::Tuple(Vec::new()), at)?;
                    self.push(v, at)?;
                }
                op::EMPTY_DICT => {
                    let v = self.new_obj(Object::Dict(Vec::new()), at)?;
                    self.push(v, at)?;
                }
                op::EMPTY_SET => {
                    let v = self.new_obj(Object::Set(Vec::new()), at)?;
                    self.push(v, at)?;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1 + 1);
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(self.err(at, "stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.new_obj(Object::Tuple(items), at)?;
                    self.push(v, at)?;
                }
                op::TUPLE => {
                    let items = self.pop_mark(at)?;
                    let v = self.new_obj(Object::Tuple(items), at)?;
                    self.push(v, at)?;
                }
                op::LIST => {
                    let items = self.pop_mark(at)?;
                    let v = self.new_obj(Object::List(items), at)?;
                    self.push(v, at)?;
                }
                op::FROZENSET => {
                    let items = self.pop_mark(at)?;
                    let v = self.new_obj(Object::Set(items), at)?;
                    self.push(v, at)?;
                }
                op::DICT => {
                    let items = self.pop_mark(at)?;
                    let pairs =
                        pairs(items).ok_or_else(|| self.err(at, "DICT with an odd item count"))?;
                    let v = self.new_obj(Object::Dict(pairs), at)?;
                    self.push(v, at)?;
                }
                op::APPEND => {
                    let item = self.pop(at)?;
                    let target = self.top(at)?.clone();
                    self.extend_list(&target, vec![item], at, "APPEND")?;
                }
                op::APPENDS | op::ADDITEMS => {
                    let items = self.pop_mark(at)?;
                    let target = self.top(at)?.clone();
                    self.extend_list(&target, items, at, "APPENDS")?;
                }
                op::SETITEM => {
                    let value = self.pop(at)?;
                    let key = self.pop(at)?;
                    let target = self.top(at)?.clone();
                    self.extend_dict(&target, vec![(key, value)], at)?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark(at)?;
                    let pairs = pairs(items)
                        .ok_or_else(|| self.err(at, "SETITEMS with an odd item count"))?;
                    let target = self.top(at)?.clone();
                    self.extend_dict(&target, pairs, at)?;
                }
                op::GLOBAL => {
                    let module = self.line_str(at)?;
                    let name = self.line_str(at)?;
                    let v = self.global(&module, &name, at)?;
                    self.push(v, at)?;
                }
                op::STACK_GLOBAL => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(self.err(at, "STACK_GLOBAL operands are not strings"));
                    };
                    let v = self.global(&module, &name, at)?;
                    self.push(v, at)?;
                }
                op::INST => {
                    let module = self.line_str(at)?;
                    let name = self.line_str(at)?;
                    let args = self.pop_mark(at)?;
                    let func = self.global(&module, &name, at)?;
                    let v = self.call_with(func, args, at)?;
                    self.push(v, at)?;
                }
                op::OBJ => {
                    let items = self.pop_mark(at)?;
                    let mut items = items.into_iter();
                    let Some(func) = items.next() else {
                        return Err(self.err(at, "OBJ without a class"));
                    };
                    let v = self.call_with(func, items.collect(), at)?;
                    self.push(v, at)?;
                }
                op::REDUCE | op::NEWOBJ => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    let v = self.call(func, args, None, at)?;
                    self.push(v, at)?;
                }
                op::NEWOBJ_EX => {
                    let kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    let v = self.call(func, args, Some(kwargs), at)?;
                    self.push(v, at)?;
                }
                op::BUILD => {
                    let state = self.pop(at)?;
                    let target = self.top(at)?.clone();
                    self.call_extra(&target, at, "BUILD")?.state = Some(state);
                }
                op::PERSID => {
                    let text = self.line_str(at)?;
                    let v = self.new_obj(Object::PersId(Value::Str(Rc::from(text))), at)?;
                    self.push(v, at)?;
                }
                op::BINPERSID => {
                    let pid = self.pop(at)?;
                    let v = self.new_obj(Object::PersId(pid), at)?;
                    self.push(v, at)?;
                }
                op::PUT => {
                    let text = self.line_str(at)?;
                    let key = text
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| self.err(at, format!("bad memo key {text:?}")))?;
                    let v = self.top(at)?.clone();
                    self.memo_put(key, v, at)?;
                }
                op::BINPUT => {
                    let key = u32::from(self.u8(at)?);
                    let v = self.top(at)?.clone();
                    self.memo_put(key, v, at)?;
                }
                op::LONG_BINPUT => {
                    let key = self.u32(at)?;
                    let v = self.top(at)?.clone();
                    self.memo_put(key, v, at)?;
                }
                op::MEMOIZE => {
                    let key =
                        u32::try_from(self.memo.len()).map_err(|_| self.err(at, "memo is full"))?;
                    let v = self.top(at)?.clone();
                    self.memo_put(key, v, at)?;
                }
                op::GET => {
                    let text = self.line_str(at)?;
                    let key = text
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| self.err(at, format!("bad memo key {text:?}")))?;
                    let v = self.memo_get(key, at)?;
                    self.push(v, at)?;
                }
                op::BINGET => {
                    let key = u32::from(self.u8(at)?);
                    let v = self.memo_get(key, at)?;
                    self.push(v, at)?;
                }
                op::LONG_BINGET => {
                    let key = self.u32(at)?;
                    let v = self.memo_get(key, at)?;
                    self.push(v, at)?;
                }
                op::EXT1 | op::EXT2 | op::EXT4 => {
                    return Err(self.err(
                        at,
                        "EXT opcodes refer to the copyreg extension registry, which is code; refused",
                    ));
                }
                op::NEXT_BUFFER | op::READONLY_BUFFER => {
                    return Err(self.err(at, "out-of-band buffers (protocol 5) are not supported"));
                }
                other => {
                    return Err(self.err(at, format!("unknown opcode 0x{other:02x}")));
                }
            }
        }
    }

    fn extend_list(
        &mut self,
        target: &Value,
        items: Vec<Value>,
        at: usize,
        opname: &str,
    ) -> Result<()> {
        // a growing Vec may hold up to twice what it was given
        self.charge_values(items.len().saturating_mul(2), at)?;
        match self.obj_mut(target, at, opname)? {
            Object::List(v) | Object::Set(v) => v.extend(items),
            Object::Call { .. } => self
                .call_extra(target, at, opname)?
                .list_items
                .extend(items),
            _ => return Err(self.err(at, format!("{opname} on a value that is not a list"))),
        }
        Ok(())
    }

    fn extend_dict(&mut self, target: &Value, items: Vec<(Value, Value)>, at: usize) -> Result<()> {
        self.charge_values(items.len().saturating_mul(4), at)?;
        match self.obj_mut(target, at, "SETITEM")? {
            Object::Dict(v) => v.extend(items),
            Object::Call { .. } => self
                .call_extra(target, at, "SETITEM")?
                .dict_items
                .extend(items),
            _ => return Err(self.err(at, "SETITEM on a value that is not a dict")),
        }
        Ok(())
    }
}

/// C's `strtol(s, &end, 0)` on a line (without its newline), when it reads the whole line
/// without overflow: leading whitespace, a sign, then `0x` hex, `0` octal or decimal digits.
fn strtol(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let hex = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|h| h.bytes().next().is_some_and(|b| b.is_ascii_hexdigit()));
    let (digits, radix) = match hex {
        Some(h) => (h, 16),
        None if t.len() > 1 && t.starts_with('0') => (&t[1..], 8),
        None => (t, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

fn pairs(items: Vec<Value>) -> Option<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Some(out)
}

/// Decodes Python's `raw-unicode-escape`: latin-1 bytes with `\uXXXX` and `\UXXXXXXXX` escapes,
/// which count only after an odd number of backslashes (`\\u0041` stays as written), need
/// exactly their hex digits, and may not name a surrogate (which Python allows and Rust strings
/// cannot hold: refused).
fn decode_raw_unicode_escape(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&c| c == b'\\').count();
        i += run;
        let width = match bytes.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => 0,
        };
        let literal = if width > 0 { run - 1 } else { run };
        out.extend(std::iter::repeat_n('\\', literal));
        if width > 0 {
            let hex = bytes.get(i + 1..i + 1 + width)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(char::from_u32(code)?);
            i += 1 + width;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Unpickled> {
        unpickle(bytes, 0, Mode::Load)
    }

    #[test]
    fn memoised_dict_mutated_after_put_is_one_object() {
        // pickle.dumps({'a': [1]}, protocol=2) with the dict fetched back from the memo
        let bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02K\x01as0h\x00.";
        let u = run(bytes).unwrap();
        let Some(Object::Dict(items)) = u.arena.object(&u.value) else {
            panic!("not a dict: {:?}", u.value)
        };
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn forbidden_global_names_module_and_offset() {
        let bytes = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
        let err = run(bytes).unwrap_err();
        match err {
            Error::ForbiddenGlobal {
                module,
                name,
                offset,
            } => {
                assert_eq!(
                    (module.as_str(), name.as_str(), offset),
                    ("os", "system", 2)
                );
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn truncated_stream_is_an_error_not_a_panic() {
        let full = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.";
        for n in 0..full.len() {
            assert!(run(&full[..n]).is_err(), "prefix {n}");
        }
        assert!(run(full).is_ok());
    }

    #[test]
    fn lying_string_length_does_not_allocate() {
        let bytes = b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.";
        assert!(run(bytes).is_err());
    }

    #[test]
    fn long1_decodes_legacy_magic_number() {
        // pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
        let bytes = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
        let u = run(bytes).unwrap();
        let Value::BigInt(b) = u.value else { panic!() };
        assert_eq!(&b[..], &bytes[4..14]);
    }

    #[test]
    fn text_integers_read_as_cpython_reads_them() {
        let show = |u: Unpickled| format!("{:?}", u.value);
        let int = |line: &str| run(format!("I{line}\n.").as_bytes()).map(show);
        let long = |line: &str| run(format!("L{line}\n.").as_bytes()).map(show);
        for (text, want) in [
            ("010", 8),
            ("0x10", 16),
            ("-0X1f", -31),
            ("+7", 7),
            (" 12", 12),
            ("12 ", 12),
            ("9", 9),
            ("0", 0),
        ] {
            assert_eq!(
                int(text).unwrap(),
                format!("{:?}", Value::Int(want)),
                "I{text}"
            );
        }
        assert_eq!(int("01").unwrap(), format!("{:?}", Value::Bool(true)));
        assert_eq!(int("00").unwrap(), format!("{:?}", Value::Bool(false)));
        for bad in ["08", "0x", "1_0", "0b1", "0o7", "5L", "010 "] {
            assert!(int(bad).is_err(), "I{bad}");
        }
        assert_eq!(long("10L").unwrap(), format!("{:?}", Value::Int(10)));
        assert_eq!(long("000L").unwrap(), format!("{:?}", Value::Int(0)));
        for bad in ["010L", "0x10L", "5LL", "1_0L"] {
            assert!(long(bad).is_err(), "L{bad}");
        }
    }

    #[test]
    fn raw_unicode_escapes_count_after_an_odd_run_of_backslashes() {
        let text = |line: &[u8]| {
            let mut b = b"V".to_vec();
            b.extend_from_slice(line);
            b.extend_from_slice(b"\n.");
            run(&b).map(|u| format!("{:?}", u.value))
        };
        let s = |v: &str| format!("{:?}", Value::Str(Rc::from(v)));
        assert_eq!(text(br"w\u0041").unwrap(), s("wA"));
        assert_eq!(text(br"w\\u0041").unwrap(), s(r"w\\u0041"));
        assert_eq!(text(br"w\\\u0041").unwrap(), s(r"w\\A"));
        assert_eq!(text(br"a\b\").unwrap(), s(r"a\b\"));
        assert!(text(br"w\u+041").is_err());
        assert!(text(br"w\u004").is_err());
    }

    #[test]
    fn deep_marks_hit_the_depth_limit() {
        let mut bytes = vec![0x80, 2];
        bytes.extend(std::iter::repeat_n(b'(', MAX_DEPTH + 1));
        let err = run(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    name: "MAX_DEPTH",
                    ..
                }
            ),
            "{err}"
        );
    }
}
