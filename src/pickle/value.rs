//! What the unpickler produces: plain values, and container objects kept in an arena.
//!
//! Containers live in an [`Arena`] and values refer to them by index, so that memoised
//! objects mutated later (`EMPTY_DICT`, `MEMOIZE`, `SETITEMS`) stay one object, and copying a
//! value (`DUP`, `GET`) never copies data.

use std::rc::Rc;

use super::torch::Global;

/// Index of an object in the [`Arena`].
pub type ObjId = u32;

/// A pickle value. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer, as little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    /// A float.
    Float(f64),
    /// A text string.
    Str(Rc<str>),
    /// A byte string.
    Bytes(Rc<[u8]>),
    /// An allowlisted global (a class or function, never called).
    Global(Rc<Global>),
    /// A container or call node in the arena.
    Obj(ObjId),
}

/// A container or a described call.
#[derive(Debug)]
pub enum Object {
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// A persistent id (torch storages), never resolved by the VM.
    PersId(Value),
    /// `func(*args, **kwargs)` as described by REDUCE / NEWOBJ / OBJ / INST, never called.
    Call {
        /// The callable (a [`Value::Global`] for anything that passed the allowlist).
        func: Value,
        /// Positional arguments: a tuple in the arena, referenced rather than copied, so that a
        /// tuple memoised once and passed to many calls costs its size once.
        args: Value,
        /// What NEWOBJ_EX, BUILD, SETITEM(S) and APPEND(S) added; boxed because most calls
        /// (tensor rebuilds) have none of it.
        extra: Option<Box<CallExtra>>,
    },
}

/// The parts of a described call that only some calls have.
#[derive(Debug, Default)]
pub struct CallExtra {
    /// Keyword arguments (NEWOBJ_EX).
    pub kwargs: Option<Value>,
    /// State applied by BUILD.
    pub state: Option<Value>,
    /// Items added by SETITEM(S) (`OrderedDict`).
    pub dict_items: Vec<(Value, Value)>,
    /// Items added by APPEND(S).
    pub list_items: Vec<Value>,
}

/// Storage for every container the unpickler built.
#[derive(Debug, Default)]
pub struct Arena {
    objects: Vec<Object>,
}

impl Arena {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the arena is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Adds an object; `None` when the arena already holds `ObjId::MAX` objects.
    pub(crate) fn push(&mut self, obj: Object) -> Option<ObjId> {
        let id = ObjId::try_from(self.objects.len()).ok()?;
        self.objects.push(obj);
        Some(id)
    }

    /// Every object, in the order the pickle built them (the order torch's unpickler would
    /// have created them in).
    pub fn iter(&self) -> impl Iterator<Item = (ObjId, &Object)> {
        (0..).zip(self.objects.iter())
    }

    /// The object behind an id.
    pub fn get(&self, id: ObjId) -> Option<&Object> {
        self.objects.get(id as usize)
    }

    pub(crate) fn get_mut(&mut self, id: ObjId) -> Option<&mut Object> {
        self.objects.get_mut(id as usize)
    }

    /// The object a value refers to, if it is one.
    pub fn object(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Obj(id) => self.get(*id),
            _ => None,
        }
    }

    /// The positional arguments of a call, as a slice.
    pub fn call_args<'a>(&'a self, args: &Value) -> &'a [Value] {
        self.seq(args).unwrap_or_default()
    }

    /// The items of a tuple or list value.
    pub fn seq<'a>(&'a self, v: &Value) -> Option<&'a [Value]> {
        match self.object(v)? {
            Object::Tuple(items) | Object::List(items) => Some(items),
            _ => None,
        }
    }
}
