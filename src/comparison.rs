//! What `load_state_dict(strict=True)` reports, as data: below both `identify`, which computes
//! it, and `error`, whose `ModelMismatch` carries it.

use serde::Serialize;

/// A key whose shape differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeMismatch {
    /// The key.
    pub key: String,
    /// Its shape in the checkpoint.
    pub checkpoint: Vec<usize>,
    /// Its shape in the model.
    pub model: Vec<usize>,
}

/// The differences `load_state_dict(strict=True)` would report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Keys the model has and the checkpoint lacks.
    pub missing: Vec<String>,
    /// Keys the checkpoint has and the model lacks.
    pub unexpected: Vec<String>,
    /// Keys in both with different shapes.
    pub mismatched: Vec<ShapeMismatch>,
}
