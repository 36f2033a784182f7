//! The allowlist: which `module.name` globals a checkpoint may reference, and what they mean.
//!
//! A global is only ever *described*: an allowed one becomes a [`Global`] value that later
//! code pattern-matches on; nothing is imported or called.

use serde::Serialize;

use crate::dtype::DType;

/// A global the unpickler accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Global {
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3`: as v2, with the tensor's dtype as 7th argument.
    RebuildTensorV3,
    /// `torch._utils._rebuild_tensor` (torch < 0.4).
    RebuildTensor,
    /// `torch._utils._rebuild_parameter`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`.
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2` (tensor subclasses).
    RebuildFromTypeV2,
    /// A typed storage class such as `torch.FloatStorage`.
    Storage(DType),
    /// A tensor or storage kind timmconv recognises but cannot convert (complex, quantized,
    /// sparse, nested...). Holds the qualified name.
    Unsupported(String),
    /// `collections.OrderedDict` (and plain `builtins.dict`).
    OrderedDict,
    /// Known-harmless data kept as an opaque value and never called; holds the qualified name.
    Data(String),
    /// A global refused by the allowlist, kept only in scan mode.
    Forbidden(String),
}

/// How `inspect --scan` classifies a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GlobalClass {
    /// Tensor, storage and container reconstruction that timmconv understands.
    Allowed,
    /// Harmless data types kept opaque (argparse.Namespace, numpy scalars, ...).
    Data,
    /// Known code-execution vectors.
    Dangerous,
    /// Anything else: refused because nobody vetted it.
    Unknown,
}

const UNSUPPORTED_STORAGES: &[&str] = &[
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
    "UntypedStorage",
    "Float8_e4m3fnStorage",
    "Float8_e5m2Storage",
];

const UNSUPPORTED_REBUILDS: &[&str] = &[
    "_rebuild_sparse_tensor",
    "_rebuild_sparse_csr_tensor",
    "_rebuild_qtensor",
    "_rebuild_nested_tensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_numpy",
    "_rebuild_xla_tensor",
    "_rebuild_mlc_tensor",
    "_rebuild_device_tensor_from_cpu_tensor",
];

const TORCH_DATA: &[&str] = &[
    "Size",
    "device",
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "float",
    "double",
    "half",
    "long",
    "int",
    "short",
    "contiguous_format",
    "channels_last",
    "preserve_format",
    "strided",
];

/// Harmless data types found in real training checkpoints, kept opaque.
const DATA: &[(&str, &str)] = &[
    ("argparse", "Namespace"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.dtypes", "Float32DType"),
    ("numpy.dtypes", "Float64DType"),
    ("numpy.dtypes", "Int64DType"),
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("builtins", "bytearray"),
    ("__builtin__", "set"),
    ("collections", "defaultdict"),
    ("collections", "Counter"),
    ("torch.serialization", "_get_layout"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Tensor"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "timedelta"),
];

/// Modules and names that are well-known code-execution vectors in pickles.
const DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "runpy",
    "webbrowser",
    "sys",
    "socket",
    "shutil",
    "pty",
    "code",
    "commands",
    "importlib",
    "ctypes",
    "pickle",
    "_pickle",
    "marshal",
    "types",
    "asyncio",
    "multiprocessing",
    "platform",
    "pdb",
    "timeit",
    "bdb",
    "cProfile",
    "profile",
    "httplib",
    "http.client",
    "requests",
    "urllib",
    "urllib.request",
    "ftplib",
    "smtplib",
    "telnetlib",
    "tempfile",
    "glob",
    "torch.storage",
    "torch.serialization",
    "dill",
];

const DANGEROUS_NAMES: &[(&str, &str)] = &[
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "compile"),
    ("builtins", "getattr"),
    ("builtins", "setattr"),
    ("builtins", "delattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("builtins", "apply"),
    ("builtins", "globals"),
    ("builtins", "locals"),
    ("builtins", "vars"),
    ("builtins", "breakpoint"),
    ("builtins", "input"),
    ("__builtin__", "eval"),
    ("__builtin__", "exec"),
    ("__builtin__", "execfile"),
    ("__builtin__", "compile"),
    ("__builtin__", "getattr"),
    ("__builtin__", "__import__"),
    ("__builtin__", "open"),
    ("__builtin__", "file"),
    ("operator", "attrgetter"),
    ("operator", "methodcaller"),
    ("operator", "itemgetter"),
    ("functools", "partial"),
    ("functools", "reduce"),
    ("numpy", "load"),
    ("numpy.testing._private.utils", "runstring"),
    ("torch", "load"),
    ("torch.hub", "load"),
    ("torch.jit", "load"),
    ("torch._inductor.codecache", "compile_file"),
];

/// Decides what a `module.name` global is. `None` means it is not on the allowlist.
pub fn resolve(module: &str, name: &str) -> Option<Global> {
    let qualified = || format!("{module}.{name}");
    match module {
        "torch._utils" => match name {
            "_rebuild_tensor_v2" => Some(Global::RebuildTensorV2),
            "_rebuild_tensor_v3" => Some(Global::RebuildTensorV3),
            "_rebuild_tensor" => Some(Global::RebuildTensor),
            "_rebuild_parameter" => Some(Global::RebuildParameter),
            "_rebuild_parameter_with_state" => Some(Global::RebuildParameterWithState),
            n if UNSUPPORTED_REBUILDS.contains(&n) => Some(Global::Unsupported(qualified())),
            _ => None,
        },
        "torch._tensor" if name == "_rebuild_from_type_v2" => Some(Global::RebuildFromTypeV2),
        "torch" => {
            if let Some(d) = DType::from_storage_name(name) {
                Some(Global::Storage(d))
            } else if UNSUPPORTED_STORAGES.contains(&name) || name.starts_with("_rebuild") {
                Some(Global::Unsupported(qualified()))
            } else if TORCH_DATA.contains(&name) {
                Some(Global::Data(qualified()))
            } else {
                None
            }
        }
        "collections" if name == "OrderedDict" => Some(Global::OrderedDict),
        "builtins" | "__builtin__" if name == "dict" => Some(Global::OrderedDict),
        _ if DATA.contains(&(module, name)) => Some(Global::Data(qualified())),
        _ => None,
    }
}

/// Classifies a global for `inspect --scan`.
pub fn classify(module: &str, name: &str) -> GlobalClass {
    match resolve(module, name) {
        Some(Global::Data(_)) => GlobalClass::Data,
        Some(_) => GlobalClass::Allowed,
        None => {
            let top = module.split('.').next().unwrap_or(module);
            if DANGEROUS_NAMES.contains(&(module, name))
                || DANGEROUS_MODULES.contains(&module)
                || DANGEROUS_MODULES.contains(&top)
            {
                GlobalClass::Dangerous
            } else {
                GlobalClass::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_covers_what_torch_save_writes() {
        assert_eq!(
            resolve("torch._utils", "_rebuild_tensor_v2"),
            Some(Global::RebuildTensorV2)
        );
        assert_eq!(
            resolve("torch", "BFloat16Storage"),
            Some(Global::Storage(DType::BF16))
        );
        assert_eq!(
            resolve("collections", "OrderedDict"),
            Some(Global::OrderedDict)
        );
        assert!(matches!(
            resolve("argparse", "Namespace"),
            Some(Global::Data(_))
        ));
    }

    #[test]
    fn code_execution_vectors_are_refused_and_called_dangerous() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "getattr"),
            ("subprocess", "Popen"),
            ("operator", "attrgetter"),
            ("functools", "partial"),
            ("runpy", "run_path"),
            ("torch.storage", "_load_from_bytes"),
        ] {
            assert_eq!(resolve(m, n), None, "{m}.{n}");
            assert_eq!(classify(m, n), GlobalClass::Dangerous, "{m}.{n}");
        }
        assert_eq!(classify("mypackage", "Thing"), GlobalClass::Unknown);
        assert_eq!(classify("torch", "FloatStorage"), GlobalClass::Allowed);
    }
}
