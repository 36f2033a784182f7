//! Turns the unpickler's arena into a plain tree of checkpoint objects, recognising tensors by
//! the rebuild functions torch.save writes.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::pickle::{Arena, Global, Object, Value, MAX_DEPTH};

/// A storage a tensor refers to through a persistent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageRef {
    pub key: String,
    pub dtype: DType,
    pub numel: usize,
    /// Extra element offset into the root storage (legacy view storages).
    pub view_offset: usize,
}

/// A tensor as described by `_rebuild_tensor_v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawTensor {
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// A checkpoint object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(usize),
    List(Vec<Node>),
    Dict(Vec<(Node, Node)>),
    Tensor(RawTensor),
    /// A tensor kind timmconv cannot convert; holds what it is.
    Unsupported(String),
    /// Data kept opaque; holds a short description.
    Opaque(String),
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
            Node::Unsupported(what) => what.clone(),
            Node::Opaque(what) => what.clone(),
        }
    }

    /// The entry of a dict node under a string key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Node::Str(s) if s == key))
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

pub(crate) struct Builder<'a> {
    arena: &'a Arena,
    layout: PidLayout,
}

impl<'a> Builder<'a> {
    pub fn new(arena: &'a Arena, layout: PidLayout) -> Self {
        Builder { arena, layout }
    }

    fn err(what: impl Into<String>) -> Error {
        Error::Structure(what.into())
    }

    pub fn build(&self, v: &Value) -> Result<Node> {
        self.node(v, 0)
    }

    fn node(&self, v: &Value, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(Error::limit(
                "MAX_DEPTH",
                "nesting of objects in the checkpoint",
                depth as u64,
                MAX_DEPTH as u64,
            ));
        }
        let d = depth + 1;
        Ok(match v {
            Value::None => Node::None,
            Value::Bool(b) => Node::Bool(*b),
            Value::Int(i) => Node::Int(*i),
            Value::BigInt(_) => Node::Opaque("int (big)".into()),
            Value::Float(f) => Node::Float(*f),
            Value::Str(s) => Node::Str(s.to_string()),
            Value::Bytes(b) => Node::Bytes(b.len()),
            Value::Global(g) => Node::Opaque(format!("{g:?}")),
            Value::Obj(id) => {
                let Some(obj) = self.arena.get(*id) else {
                    return Err(Self::err("dangling object reference"));
                };
                match obj {
                    Object::List(items) | Object::Tuple(items) | Object::Set(items) => Node::List(
                        items
                            .iter()
                            .map(|x| self.node(x, d))
                            .collect::<Result<_>>()?,
                    ),
                    Object::Dict(items) => Node::Dict(self.pairs(items, d)?),
                    Object::PersId(_) => Node::Opaque("persistent id".into()),
                    Object::Call {
                        func,
                        args,
                        dict_items,
                        ..
                    } => self.call(func, args, dict_items, d)?,
                }
            }
        })
    }

    fn pairs(&self, items: &[(Value, Value)], depth: usize) -> Result<Vec<(Node, Node)>> {
        items
            .iter()
            .map(|(k, v)| Ok((self.node(k, depth)?, self.node(v, depth)?)))
            .collect()
    }

    fn call(
        &self,
        func: &Value,
        args: &[Value],
        dict_items: &[(Value, Value)],
        depth: usize,
    ) -> Result<Node> {
        let Value::Global(g) = func else {
            return Err(Self::err("call of a non-global"));
        };
        match &**g {
            Global::RebuildTensorV2 | Global::RebuildTensor => Ok(Node::Tensor(self.tensor(args)?)),
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let [data, ..] = args else {
                    return Err(Self::err("_rebuild_parameter without arguments"));
                };
                match self.node(data, depth)? {
                    t @ (Node::Tensor(_) | Node::Unsupported(_)) => Ok(t),
                    other => Err(Self::err(format!(
                        "_rebuild_parameter of a {} instead of a tensor",
                        other.kind()
                    ))),
                }
            }
            Global::RebuildFromTypeV2 => {
                let [inner_func, _ty, inner_args, ..] = args else {
                    return Err(Self::err("_rebuild_from_type_v2 with too few arguments"));
                };
                let Some(inner_args) = self.arena.seq(inner_args) else {
                    return Err(Self::err("_rebuild_from_type_v2 arguments are not a tuple"));
                };
                self.call(inner_func, inner_args, &[], depth)
            }
            Global::OrderedDict => {
                let mut items = Vec::new();
                if let [init, ..] = args {
                    for pair in self.arena.seq(init).unwrap_or_default() {
                        match self.arena.seq(pair) {
                            Some([k, v]) => {
                                items.push((self.node(k, depth)?, self.node(v, depth)?))
                            }
                            _ => return Err(Self::err("OrderedDict item is not a pair")),
                        }
                    }
                }
                items.extend(self.pairs(dict_items, depth)?);
                Ok(Node::Dict(items))
            }
            Global::Unsupported(what) => Ok(Node::Unsupported(what.clone())),
            Global::Storage(_) => Ok(Node::Opaque("storage".into())),
            Global::Data(what) | Global::Forbidden(what) => Ok(Node::Opaque(what.clone())),
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
            Some(Object::Call { args, .. }) => match args.as_slice() {
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

    fn tensor(&self, args: &[Value]) -> Result<RawTensor> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(Self::err(format!(
                "tensor rebuild with {} arguments, expected at least 4",
                args.len()
            )));
        };
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
        Ok(RawTensor {
            offset: self
                .int(offset, "storage offset")?
                .checked_add(storage.view_offset)
                .ok_or_else(|| Self::err("storage offset overflows"))?,
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
            view_offset: 0,
        };
        // legacy view storages: (view_key, offset, view_size) into the root storage
        if let Some(view) = view {
            if let Some([_view_key, offset, size]) = self.arena.seq(view) {
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
                storage.view_offset = offset;
            }
        }
        Ok(storage)
    }
}
