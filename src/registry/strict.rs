//! Where timm loads pretrained weights with `load_state_dict(strict=False)`.
//!
//! timm 1.0.31's `build_model_with_cfg` loads strictly unless a family's factory passes
//! `pretrained_strict=False`. For a checkpoint in a pretrained tag's own layout, the one that
//! matters is `convnext._create_convnext`:
//!
//! ```python
//! if kwargs.get('pretrained_cfg', '') == 'fcmae':
//!     # NOTE fcmae pretrained weights have no classifier or final norm-layer (`head.norm`)
//!     kwargs.setdefault('pretrained_strict', False)
//! ```
//!
//! `create_model('convnextv2_atto.fcmae')` passes the tag as `pretrained_cfg`, so only a model
//! named with exactly that tag loads non-strictly (not `convnextv2_atto`, whose default tag is
//! another, nor `.fcmae_ft_in1k`). A non-strict load leaves a missing key at the model's init and
//! ignores an unexpected one; a shape mismatch still raises. `tests/python/test_pretrained_strict.py`
//! reads timm's source so that this table cannot drift from it. The other `pretrained_strict`
//! sites of timm 1.0.31 depend on `features_only` or hold for every tag of a family
//! (`mobilenetv5`, `dla`, `hrnet`, `inception_v3`, ...) and are not mirrored yet: those
//! checkpoints are timm's own and load strictly in practice.

/// `(timm module, pretrained tag)` whose `create_model(ARCH.TAG, pretrained=True)` loads with
/// `strict=False`.
pub const NON_STRICT_TAGS: &[(&str, &str)] = &[("convnext", "fcmae")];

/// Whether `timm.create_model(name)` of an architecture defined in `module` loads its pretrained
/// weights strictly. `name` is the model name as given (`convnextv2_atto.fcmae`): timm decides
/// on the tag named, not on the default one.
pub fn loads_strictly(module: Option<&str>, name: &str) -> bool {
    let tag = super::split_name(name).1;
    !NON_STRICT_TAGS
        .iter()
        .any(|(m, t)| module == Some(*m) && tag == Some(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fcmae_tag_of_convnext_is_non_strict() {
        assert!(!loads_strictly(Some("convnext"), "convnextv2_atto.fcmae"));
        assert!(loads_strictly(Some("convnext"), "convnextv2_atto"));
        assert!(loads_strictly(
            Some("convnext"),
            "convnextv2_atto.fcmae_ft_in1k"
        ));
        assert!(loads_strictly(Some("vision_transformer"), "vit_x.fcmae"));
        assert!(loads_strictly(None, "convnextv2_atto.fcmae"));
    }
}
