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
    /// `func(*args, **kwargs)` as described by REDUCE / NEWOBJ / OBJ / INST, never called;
    /// with whatever BUILD, SETITEM(S) and APPEND(S) applied to it afterwards.
    Call {
        /// The callable (a [`Value::Global`] for anything that passed the allowlist).
        func: Value,
        /// Positional arguments.
        args: Vec<Value>,
        /// Keyword arguments (NEWOBJ_EX).
        kwargs: Option<Value>,
        /// State applied by BUILD.
        state: Option<Value>,
        /// Items added by SETITEM(S) (`OrderedDict`).
        dict_items: Vec<(Value, Value)>,
        /// Items added by APPEND(S).
        list_items: Vec<Value>,
    },
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

    pub(crate) fn push(&mut self, obj: Object) -> ObjId {
        let id = self.objects.len() as ObjId;
        self.objects.push(obj);
        id
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

    /// The items of a tuple or list value.
    pub fn seq<'a>(&'a self, v: &Value) -> Option<&'a [Value]> {
        match self.object(v)? {
            Object::Tuple(items) | Object::List(items) => Some(items),
            _ => None,
        }
    }
}
