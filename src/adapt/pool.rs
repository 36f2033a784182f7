//! Global pooling: which classifier keys a `global_pool` other than the architecture's reshapes
//! (timm re-initialises them), from the pool rules in the registry's resolution layout, or why
//! the weights cannot be loaded into the model it builds.

use crate::error::{Result, Setting};
use crate::registry::resize::{ResizeLayout, POOL_TYPES};

/// The keys `global_pool = pool` reshapes in `layout`'s architecture (the classifier timm would
/// re-initialise), or why the checkpoint cannot be loaded into that model. `classifier` holds
/// the cfg's classifier modules: a reshaped key elsewhere is refused.
pub fn reshaped_keys(
    layout: &ResizeLayout,
    pool: &str,
    classifier: &[String],
) -> Result<Vec<String>> {
    let model = || layout.name.clone();
    let pool_name = || pool.to_owned();
    if !POOL_TYPES.contains(&pool) {
        return Err(Setting::UnknownGlobalPool { pool: pool_name() }.into());
    }
    let Some(rule) = layout.pools.get(pool) else {
        return Err(Setting::NoPoolData {
            model: model(),
            pool: pool_name(),
        }
        .into());
    };
    if let Some(e) = &rule.error {
        return Err(Setting::PoolUnbuildable {
            model: model(),
            pool: pool_name(),
            why: e.clone(),
        }
        .into());
    }
    if let Some(k) = rule.added.first().or(rule.removed.first()) {
        return Err(Setting::PoolChangesKeys {
            model: model(),
            pool: pool_name(),
            key: k.clone(),
            added: rule.added.contains(k),
        }
        .into());
    }
    let in_head = |k: &str| {
        classifier
            .iter()
            .any(|c| k == format!("{c}.weight") || k == format!("{c}.bias"))
    };
    if let Some(k) = rule.changed.iter().find(|k| !in_head(k)) {
        return Err(Setting::PoolReshapesBody {
            model: model(),
            pool: pool_name(),
            key: k.clone(),
        }
        .into());
    }
    if rule.changed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(classifier
        .iter()
        .flat_map(|c| [format!("{c}.weight"), format!("{c}.bias")])
        .collect())
}
