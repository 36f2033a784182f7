//! Turns the unpickler's arena into a plain tree of checkpoint objects, recognising tensors by
//! the rebuild functions torch.save writes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::dtype::DType;
use crate::error::{Budget, Error, Result};
use crate::pickle::{Arena, CallExtra, Global, ObjId, Object, Value, MAX_DEPTH};

/// A storage a tensor refers to through a persistent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageRef {
    pub key: String,
    pub dtype: DType,
    pub numel: usize,
    /// A legacy view storage: `(offset, size)` in elements of the root storage. Tensors over
    /// it may only address those `size` elements, as torch checks.
    pub view: Option<(usize, usize)>,
}

/// A tensor as described by `_rebuild_tensor_v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawTensor {
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// A checkpoint object. Containers share their items (`Rc`), so an object the pickle
/// references many times is built once and costs its size once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(usize),
    List(Rc<[Node]>),
    Dict(Rc<[(Node, Node)]>),
    Tensor(Rc<RawTensor>),
    /// A tensor kind timmconv cannot convert; holds what it is.
    Unsupported(Rc<str>),
    /// Data kept opaque; holds a short description.
    Opaque(Rc<str>),
    /// A container deeper than a state dict's entries, which nothing reads: only its kind.
    Unexpanded(&'static str),
}

impl Node {
    /// A short description of the kind of object, for reports.
    pub fn kind(&self) -> String {
        match self {
            Node::None => "None".into(),
            Node::Bool(_) => "bool".into(),
            Node::Int(_) => "int".into(),
            Node::Float(_) => "float".into(),
            Node::Str(_) => "str".into(),
            Node::Bytes(_) => "bytes".into(),
            Node::List(_) => "list".into(),
            Node::Dict(_) => "dict".into(),
            Node::Tensor(_) => "tensor".into(),
            Node::Unsupported(what) | Node::Opaque(what) => what.to_string(),
            Node::Unexpanded(kind) => (*kind).into(),
        }
    }

    /// The entry of a dict node under a string key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Node::Str(s) if &**s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Which persistent-id layout the container uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidLayout {
    /// `('storage', type, key, location, numel)`
    Zip,
    /// `('storage', type, key, location, numel, view_metadata)`
    Legacy,
}

/// Container levels built below the root: the root (a training checkpoint's dict), the state
/// dict under it, and that state dict's entries. Deeper containers (optimizer state, nested
/// configs) are described by kind only; tensors are built at any level they are reached.
const LEVELS: usize = 3;

/// Most bytes the built tree may take (`MAX_TREE_MEMORY`): with `Rc`-shared containers a
/// tree costs about what its objects do, and this bounds a checkpoint whose state dicts hold
/// far more entries than a real one.
pub const MAX_TREE_MEMORY: usize = 128 << 20;

pub(crate) struct Builder<'a> {
    arena: &'a Arena,
    layout: PidLayout,
    built: RefCell<HashMap<(ObjId, usize), Node>>,
    memory: Budget,
}

impl<'a> Builder<'a> {
    pub fn new(arena: &'a Arena, layout: PidLayout) -> Self {
        Builder {
            arena,
            layout,
            built: RefCell::new(HashMap::new()),
            memory: Budget::new("MAX_TREE_MEMORY", MAX_TREE_MEMORY),
        }
    }

    fn err(what: impl Into<String>) -> Error {
        Error::Structure(what.into())
    }

    fn charge(&self, bytes: usize) -> Result<()> {
        self.memory
            .charge(bytes, || "memory for the checkpoint's object tree")
    }

    fn depth(depth: usize, what: &'static str) -> Result<()> {
        Error::at_most("MAX_DEPTH", depth, MAX_DEPTH, || what)
    }

    pub fn build(&self, v: &Value) -> Result<Node> {
        self.node(v, 0, LEVELS)
    }

    /// Every storage the pickle declares, in the order torch's unpickler would meet them.
    /// torch keeps the first declaration of a key and reuses it for every later reference; a
    /// key declared again with another dtype or size would read differently here and there,
    /// so it is refused.
    pub fn storages(&self) -> Result<HashMap<String, StorageRef>> {
        let mut out: HashMap<String, StorageRef> = HashMap::new();
        for (_, obj) in self.arena.iter() {
            let Object::PersId(pid) = obj else { continue };
            let s = self.storage(pid)?;
            match out.get(&s.key) {
                Some(first) if (first.dtype, first.numel) != (s.dtype, s.numel) => {
                    return Err(Self::err(format!(
                        "storage `{}` is declared as {} elements of {} and again as {} elements \
                         of {}; torch would read both through the first declaration",
                        s.key, first.numel, first.dtype, s.numel, s.dtype
                    )))
                }
                Some(_) => {}
                None => {
                    out.insert(s.key.clone(), s);
                }
            }
        }
        Ok(out)
    }

    fn node(&self, v: &Value, depth: usize, levels: usize) -> Result<Node> {
        Self::depth(depth, "nesting of objects in the checkpoint")?;
        let d = depth + 1;
        Ok(match v {
            Value::None => Node::None,
            Value::Bool(b) => Node::Bool(*b),
            Value::Int(i) => Node::Int(*i),
            Value::BigInt(_) => Node::Opaque("int (big)".into()),
            Value::Float(f) => Node::Float(*f),
            Value::Str(s) => Node::Str(s.clone()),
            Value::Bytes(b) => Node::Bytes(b.len()),
            Value::Global(g) => Node::Opaque(format!("{g:?}").into()),
            Value::Obj(id) => {
                if let Some(n) = self.built.borrow().get(&(*id, levels)) {
                    return Ok(n.clone());
                }
                let Some(obj) = self.arena.get(*id) else {
                    return Err(Self::err("dangling object reference"));
                };
                let n = self.object(obj, d, levels)?;
                self.charge(64)?;
                self.built.borrow_mut().insert((*id, levels), n.clone());
                n
            }
        })
    }

    fn object(&self, obj: &Object, depth: usize, levels: usize) -> Result<Node> {
        Ok(match obj {
            Object::List(_) | Object::Tuple(_) | Object::Set(_) if levels == 0 => {
                Node::Unexpanded("list")
            }
            Object::Dict(_) if levels == 0 => Node::Unexpanded("dict"),
            Object::List(items) | Object::Tuple(items) | Object::Set(items) => {
                self.charge(items.len().saturating_mul(std::mem::size_of::<Node>()))?;
                Node::List(
                    items
                        .iter()
                        .map(|x| self.node(x, depth, levels - 1))
                        .collect::<Result<_>>()?,
                )
            }
            Object::Dict(items) => Node::Dict(self.pairs(items, depth, levels)?),
            Object::PersId(_) => Node::Opaque("persistent id".into()),
            Object::Call { func, args, extra } => {
                let args = self.arena.call_args(args);
                self.call(func, args, extra.as_deref(), depth, levels)?
            }
        })
    }

    fn pairs(
        &self,
        items: &[(Value, Value)],
        depth: usize,
        levels: usize,
    ) -> Result<Rc<[(Node, Node)]>> {
        self.charge(items.len().saturating_mul(2 * std::mem::size_of::<Node>()))?;
        let below = levels.saturating_sub(1);
        items
            .iter()
            .map(|(k, v)| Ok((self.node(k, depth, below)?, self.node(v, depth, below)?)))
            .collect()
    }

    /// A described call. Wrappers (`_rebuild_parameter`, `_rebuild_from_type_v2`) are unwrapped
    /// in a loop, not by recursion, so a chain of thousands costs no stack.
    fn call(
        &self,
        func: &Value,
        args: &[Value],
        extra: Option<&CallExtra>,
        depth: usize,
        levels: usize,
    ) -> Result<Node> {
        let (mut func, mut args, mut extra, mut depth) = (func, args, extra, depth);
        loop {
            Self::depth(depth, "nesting of calls in the checkpoint")?;
            depth += 1;
            let Value::Global(g) = func else {
                return Err(Self::err("call of a non-global"));
            };
            if matches!(
                **g,
                Global::RebuildTensorV2
                    | Global::RebuildTensorV3
                    | Global::RebuildTensor
                    | Global::RebuildParameter
                    | Global::RebuildParameterWithState
                    | Global::RebuildFromTypeV2
            ) {
                Self::untouched(extra)?;
            }
            match &**g {
                Global::RebuildTensorV2 | Global::RebuildTensorV3 | Global::RebuildTensor => {
                    let t = self.tensor(args, g)?;
                    self.charge(
                        std::mem::size_of::<RawTensor>()
                            + t.storage.key.len()
                            + 16 * (t.shape.len() + t.stride.len()),
                    )?;
                    return Ok(Node::Tensor(Rc::new(t)));
                }
                Global::RebuildParameter | Global::RebuildParameterWithState => {
                    let [data, ..] = args else {
                        return Err(Self::err("_rebuild_parameter without arguments"));
                    };
                    if matches!(**g, Global::RebuildParameterWithState) {
                        self.harmless_state(args.get(3), "_rebuild_parameter_with_state")?;
                    }
                    match self.arena.object(data) {
                        Some(Object::Call {
                            func: f,
                            args: a,
                            extra: inner_extra,
                        }) => {
                            func = f;
                            args = self.arena.call_args(a);
                            extra = inner_extra.as_deref();
                        }
                        _ => {
                            let kind = self.node(data, depth, 0)?.kind();
                            return Err(Self::err(format!(
                                "_rebuild_parameter of a {kind} instead of a tensor"
                            )));
                        }
                    }
                }
                Global::RebuildFromTypeV2 => {
                    let [inner_func, _ty, inner_args, rest @ ..] = args else {
                        return Err(Self::err("_rebuild_from_type_v2 with too few arguments"));
                    };
                    self.harmless_state(rest.first(), "_rebuild_from_type_v2")?;
                    let Some(Object::Tuple(inner_args)) = self.arena.object(inner_args) else {
                        return Err(Self::err("_rebuild_from_type_v2 arguments are not a tuple"));
                    };
                    func = inner_func;
                    args = inner_args;
                    extra = None;
                }
                Global::OrderedDict if levels == 0 => return Ok(Node::Unexpanded("dict")),
                Global::OrderedDict => {
                    let below = levels - 1;
                    let mut items = Vec::new();
                    if let [init, ..] = args {
                        let pairs = self.arena.seq(init).unwrap_or_default();
                        self.charge(pairs.len().saturating_mul(2 * std::mem::size_of::<Node>()))?;
                        for pair in pairs {
                            match self.arena.seq(pair) {
                                Some([k, v]) => items.push((
                                    self.node(k, depth, below)?,
                                    self.node(v, depth, below)?,
                                )),
                                _ => return Err(Self::err("OrderedDict item is not a pair")),
                            }
                        }
                    }
                    let dict_items = extra.map_or(&[][..], |e| &e.dict_items);
                    items.extend(self.pairs(dict_items, depth, levels)?.iter().cloned());
                    return Ok(Node::Dict(items.into()));
                }
                Global::Unsupported(what) => return Ok(Node::Unsupported(what.as_str().into())),
                Global::Storage(_) => return Ok(Node::Opaque("storage".into())),
                Global::Data(what) | Global::Forbidden(what) => {
                    return Ok(Node::Opaque(what.as_str().into()))
                }
            }
        }
    }

    /// A rebuilt tensor (or parameter) must not be changed afterwards by the pickle: BUILD
    /// calls `Tensor.__setstate__` (a 4-tuple state is `set_(storage, offset, size, stride)`,
    /// a 5-tuple replaces `data`), SETITEM is `t[k] = v`; torch applies both, even with
    /// `weights_only=True` for BUILD.
    fn untouched(extra: Option<&CallExtra>) -> Result<()> {
        let Some(e) = extra else { return Ok(()) };
        let what = if e.state.is_some() {
            "BUILD (Tensor.__setstate__, which can re-point it at other data)"
        } else if !e.dict_items.is_empty() {
            "SETITEM (`t[k] = v`, which changes its values)"
        } else if !e.list_items.is_empty() {
            "APPEND"
        } else if e.kwargs.is_some() {
            "keyword arguments (NEWOBJ_EX)"
        } else {
            return Ok(());
        };
        Err(Self::err(format!(
            "the pickle changes a rebuilt tensor with {what}; torch would load other values \
             than the storage's"
        )))
    }

    /// The state `_rebuild_parameter_with_state` / `_rebuild_from_type_v2` set on the tensor
    /// with `setattr`: `None`, or a dict (or a `(dict, slots)` pair) whose keys are not tensor
    /// attributes that carry values (`data`, `real`, `imag`).
    fn harmless_state(&self, state: Option<&Value>, rebuild: &str) -> Result<()> {
        let Some(state) = state.filter(|s| !matches!(s, Value::None)) else {
            return Ok(());
        };
        let parts: Vec<&Value> = match self.arena.object(state) {
            Some(Object::Tuple(items)) if items.len() == 2 => items.iter().collect(),
            _ => vec![state],
        };
        for part in parts {
            match (part, self.arena.object(part)) {
                (Value::None, _) => {}
                (_, Some(Object::Dict(items))) => {
                    for (k, _) in items {
                        match k {
                            Value::Str(s) if !["data", "real", "imag"].contains(&&**s) => {}
                            Value::Str(s) => {
                                return Err(Self::err(format!(
                                    "{rebuild} sets the tensor's `{s}` from its state; torch \
                                     would load those values instead"
                                )))
                            }
                            _ => {
                                return Err(Self::err(format!(
                                    "{rebuild} state has a non-string key"
                                )))
                            }
                        }
                    }
                }
                _ => {
                    return Err(Self::err(format!(
                        "{rebuild} state is {}, not a dict",
                        self.describe(part)
                    )))
                }
            }
        }
        Ok(())
    }

    /// Python's truth value of a rebuild's metadata argument, where timmconv can tell.
    fn is_falsy(&self, v: &Value) -> bool {
        match v {
            Value::None | Value::Bool(false) | Value::Int(0) => true,
            _ => match self.arena.object(v) {
                Some(Object::Dict(items)) => items.is_empty(),
                Some(Object::Tuple(items) | Object::List(items)) => items.is_empty(),
                _ => false,
            },
        }
    }

    fn describe(&self, v: &Value) -> String {
        match self.arena.object(v) {
            Some(Object::Dict(items)) => {
                let keys: Vec<String> = items
                    .iter()
                    .take(4)
                    .map(|(k, _)| match k {
                        Value::Str(s) => format!("{s:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect();
                format!("a dict with keys {}", keys.join(", "))
            }
            Some(Object::Call { .. }) => "a call".into(),
            Some(_) => "a container".into(),
            None => format!("{v:?}"),
        }
    }

    fn int(&self, v: &Value, what: &str) -> Result<usize> {
        match v {
            Value::Int(i) => {
                usize::try_from(*i).map_err(|_| Self::err(format!("{what} is negative ({i})")))
            }
            Value::Bool(b) => Ok(usize::from(*b)),
            _ => Err(Self::err(format!("{what} is not an integer"))),
        }
    }

    fn ints(&self, v: &Value, what: &str) -> Result<Vec<usize>> {
        let items = match self.arena.object(v) {
            Some(Object::Tuple(items) | Object::List(items)) => items.as_slice(),
            // torch.Size((...)) written as a call
            Some(Object::Call { args, .. }) => match self.arena.call_args(args) {
                [inner] => self
                    .arena
                    .seq(inner)
                    .ok_or_else(|| Self::err(format!("{what} is not a tuple")))?,
                _ => return Err(Self::err(format!("{what} is not a tuple"))),
            },
            _ => return Err(Self::err(format!("{what} is not a tuple"))),
        };
        items.iter().map(|x| self.int(x, what)).collect()
    }

    fn tensor(&self, args: &[Value], rebuild: &Global) -> Result<RawTensor> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(Self::err(format!(
                "tensor rebuild with {} arguments, expected at least 4",
                args.len()
            )));
        };
        // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata)
        // _rebuild_tensor_v3(..., hooks, dtype, metadata): the tensor's dtype is the argument's
        let (dtype, metadata) = match rebuild {
            Global::RebuildTensorV3 => (args.get(6), args.get(7)),
            Global::RebuildTensorV2 => (None, args.get(6)),
            _ => (None, None),
        };
        if let Some(m) = metadata.filter(|m| !self.is_falsy(m)) {
            return Err(Self::err(format!(
                "tensor metadata {} (torch applies it: {{'neg': True}} negates the values, \
                 {{'conj': True}} conjugates them); timmconv does not",
                self.describe(m)
            )));
        }
        let storage = match self.arena.object(storage) {
            Some(Object::PersId(pid)) => self.storage(pid)?,
            Some(Object::Call {
                func: Value::Global(g),
                ..
            }) if matches!(**g, Global::Unsupported(_)) => {
                return Err(Self::err(format!(
                    "tensor over an unsupported storage {g:?}"
                )))
            }
            _ => return Err(Self::err("tensor storage is not a persistent id")),
        };
        if matches!(rebuild, Global::RebuildTensorV3) {
            let named = match dtype {
                Some(Value::Global(g)) => match &**g {
                    Global::Data(name) => torch_dtype(name).map(|d| (d, name.clone())),
                    _ => None,
                },
                _ => None,
            };
            match named {
                Some((d, _)) if d == storage.dtype => {}
                Some((_, name)) => {
                    return Err(Self::err(format!(
                        "_rebuild_tensor_v3 reads its {} storage as {name}; torch takes the \
                         dtype from that argument, so the values would differ",
                        storage.dtype.storage_name()
                    )))
                }
                None => {
                    return Err(Self::err(
                        "_rebuild_tensor_v3 without a dtype timmconv reads",
                    ))
                }
            }
        }
        Ok(RawTensor {
            offset: self.int(offset, "storage offset")?,
            shape: self.ints(size, "tensor size")?,
            stride: self.ints(stride, "tensor stride")?,
            storage,
        })
    }

    fn storage(&self, pid: &Value) -> Result<StorageRef> {
        let Some(items) = self.arena.seq(pid) else {
            return Err(Self::err("persistent id is not a tuple"));
        };
        let (kind, ty, key, numel, view) = match (self.layout, items) {
            (PidLayout::Zip, [kind, ty, key, _location, numel]) => (kind, ty, key, numel, None),
            (PidLayout::Legacy, [kind, ty, key, _location, numel, view]) => {
                (kind, ty, key, numel, Some(view))
            }
            _ => {
                return Err(Self::err(format!(
                    "persistent id has {} fields, expected {}",
                    items.len(),
                    if self.layout == PidLayout::Zip { 5 } else { 6 }
                )))
            }
        };
        if !matches!(kind, Value::Str(s) if &**s == "storage") {
            return Err(Self::err("persistent id is not a storage"));
        }
        let dtype = match ty {
            Value::Global(g) => match &**g {
                Global::Storage(d) => *d,
                Global::Unsupported(what) => {
                    return Err(Self::err(format!("unsupported storage type `{what}`")))
                }
                other => return Err(Self::err(format!("storage type is {other:?}"))),
            },
            _ => return Err(Self::err("storage type is not a global")),
        };
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return Err(Self::err("storage key is not a string")),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Self::err(format!(
                "storage key {key:?} is not a plain name"
            )));
        }
        let mut storage = StorageRef {
            key,
            dtype,
            numel: self.int(numel, "storage size")?,
            view: None,
        };
        // legacy view storages: (view_key, offset, view_size) into the root storage
        if let Some(view) = view.filter(|v| !matches!(v, Value::None)) {
            let Some([_view_key, offset, size]) = self.arena.seq(view) else {
                return Err(Self::err(
                    "legacy view metadata is not a (key, offset, size) tuple",
                ));
            };
            {
                let offset = self.int(offset, "view offset")?;
                let size = self.int(size, "view size")?;
                if offset
                    .checked_add(size)
                    .is_none_or(|end| end > storage.numel)
                {
                    return Err(Self::err(format!(
                        "view storage ({offset}+{size}) exceeds its root storage of {} elements",
                        storage.numel
                    )));
                }
                storage.view = Some((offset, size));
            }
        }
        Ok(storage)
    }
}

/// The element type of a torch dtype global (`torch.float16`, `torch.half`, ...).
fn torch_dtype(qualified: &str) -> Option<DType> {
    Some(match qualified.strip_prefix("torch.")? {
        "float32" | "float" => DType::F32,
        "float64" | "double" => DType::F64,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "bool" => DType::Bool,
        _ => return None,
    })
}
