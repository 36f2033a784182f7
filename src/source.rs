//! Where a checkpoint comes from: a file, a hub-layout folder (`model.safetensors` or
//! `pytorch_model.bin` beside a `config.json`), or `hf-hub:ORG/REPO[@REVISION]`, found in the
//! Hugging Face cache the way `huggingface_hub` lays it out and, with the `download` feature,
//! downloaded into that same cache when it is not there.
//!
//! ```
//! let id = timmconv::source::HubId::parse("hf-hub:timm/resnet18.a1_in1k@main").unwrap()?;
//! assert_eq!(id.repo, "timm/resnet18.a1_in1k");
//! assert_eq!(id.folder_name(), "models--timm--resnet18.a1_in1k");
//! # Ok::<(), timmconv::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Result, SourceError};
use crate::hf_cache::snapshot_checked;
pub use crate::hf_cache::{cache_dir, cached, offline, snapshot, HubId, PREFIX};

/// The weight files timm looks for in a hub repo, in the order it tries them.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];
/// The hub repo's description of the model.
pub const CONFIG_FILE: &str = "config.json";

/// A resolved input.
#[derive(Debug, Clone)]
pub struct Source {
    /// The checkpoint file to read.
    pub weights: PathBuf,
    /// The repo's or folder's `config.json`, when there is one.
    pub config: Option<Map<String, Value>>,
}

/// Resolves `input`: `hf-hub:…` through the cache (downloading what is missing unless
/// `HF_HUB_OFFLINE` is set), a folder through its weight file and `config.json`, and anything
/// else as the file itself. A FIFO, socket or device is refused without opening it.
/// `progress(done, total)` follows a download.
pub fn resolve(input: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Source> {
    if let Some(id) = input.to_str().and_then(HubId::parse) {
        return resolve_hub(&id?, progress);
    }
    let meta = match std::fs::metadata(input) {
        Ok(m) => m,
        // let the reader report a missing file the way it always has
        Err(_) => {
            return Ok(Source {
                weights: input.to_path_buf(),
                config: None,
            })
        }
    };
    if meta.is_dir() {
        let Some(weights) = WEIGHT_FILES
            .iter()
            .map(|f| input.join(f))
            .find(|p| p.is_file())
        else {
            return Err(SourceError::FolderWithoutWeights {
                path: input.to_path_buf(),
                files: weight_files(),
            }
            .into());
        };
        let config = read_config(&input.join(CONFIG_FILE))?;
        return Ok(Source { weights, config });
    }
    if !meta.is_file() {
        return Err(SourceError::InputNotRegular {
            path: input.to_path_buf(),
        }
        .into());
    }
    Ok(Source {
        weights: input.to_path_buf(),
        config: None,
    })
}

/// [`WEIGHT_FILES`] as an error carries them.
fn weight_files() -> Vec<String> {
    WEIGHT_FILES.map(str::to_owned).to_vec()
}

/// A hub folder's or snapshot's `config.json`: a regular file of at most
/// [`MAX_CONFIG_BYTES`](crate::small_file::MAX_CONFIG_BYTES), the same bound a download has.
fn read_config(path: &Path) -> Result<Option<Map<String, Value>>> {
    let limit = crate::small_file::MAX_CONFIG_BYTES;
    let Some(text) = crate::small_file::read_text(path, "MAX_CONFIG_BYTES", limit)? else {
        return Ok(None);
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(SourceError::ConfigNotObject {
            path: path.to_path_buf(),
        }
        .into()),
        Err(source) => Err(SourceError::ConfigJson {
            path: path.to_path_buf(),
            source,
        }
        .into()),
    }
}

fn resolve_hub(id: &HubId, progress: &mut dyn FnMut(u64, u64)) -> Result<Source> {
    let cache = cache_dir();
    // a refs file that is refused (a FIFO, a device, too large) is an error, not "not cached"
    snapshot_checked(&cache, id)?;
    let found = WEIGHT_FILES.iter().find_map(|f| cached(&cache, id, f));
    if let Some(weights) = found {
        let config = match cached(&cache, id, CONFIG_FILE) {
            Some(p) => read_config(&p)?,
            // weights without config.json: another process may be between the two downloads
            // (`batch --jobs`), or the repo has none; ask the hub, as timm would, unless offline
            None if !offline() => missing_config(&cache, id, &weights)?,
            None => None,
        };
        return Ok(Source { weights, config });
    }
    if offline() {
        return Err(SourceError::OfflineNotCached {
            repo: id.repo.clone(),
            revision: id.revision.clone(),
            files: weight_files(),
            cache,
        }
        .into());
    }
    download(&cache, id, progress)
}

/// The config.json of the snapshot `weights` lies in, fetched from the hub at that snapshot's
/// commit; `None` when the repo has none.
#[cfg(feature = "download")]
fn missing_config(cache: &Path, id: &HubId, weights: &Path) -> Result<Option<Map<String, Value>>> {
    use crate::download::Hub;

    let commit = weights
        .parent()
        .and_then(Path::file_name)
        .and_then(|c| c.to_str())
        .filter(|c| crate::hf_cache::checked_commit(c).is_ok());
    let Some(commit) = commit else {
        return Ok(None);
    };
    config_at(
        &Hub::from_env(&crate::hf_cache::hf_home())?,
        cache,
        id,
        commit,
    )
}

/// The repo's config.json at `commit`, downloaded into `cache`; `None` when the repo has none (a
/// repo without config.json still converts with flags); any other failure is an error.
#[cfg(feature = "download")]
fn config_at(
    hub: &crate::download::Hub,
    cache: &Path,
    id: &HubId,
    commit: &str,
) -> Result<Option<Map<String, Value>>> {
    let limit = Some(crate::small_file::MAX_CONFIG_BYTES);
    match hub.fetch(cache, &id.at(commit), CONFIG_FILE, limit, &mut |_, _| {})? {
        Some(f) => read_config(&f.path),
        None => Ok(None),
    }
}

/// Without the `download` feature a config.json missing from the cache stays missing.
#[cfg(not(feature = "download"))]
fn missing_config(
    _cache: &Path,
    _id: &HubId,
    _weights: &Path,
) -> Result<Option<Map<String, Value>>> {
    Ok(None)
}

#[cfg(not(feature = "download"))]
fn download(cache: &Path, id: &HubId, _progress: &mut dyn FnMut(u64, u64)) -> Result<Source> {
    Err(SourceError::NoDownload {
        repo: id.repo.clone(),
        revision: id.revision.clone(),
        cache: cache.to_path_buf(),
    }
    .into())
}

#[cfg(feature = "download")]
fn download(cache: &Path, id: &HubId, progress: &mut dyn FnMut(u64, u64)) -> Result<Source> {
    use crate::download::Hub;

    let hub = Hub::from_env(&crate::hf_cache::hf_home())?;
    // only "no such file" moves on to the next name: a 500 or a timeout is an error, not a
    // reason to read pytorch_model.bin instead
    let mut weights = None;
    for file in WEIGHT_FILES {
        if let Some(f) = hub.fetch(cache, id, file, None, progress)? {
            weights = Some(f);
            break;
        }
    }
    let Some(weights) = weights else {
        return Err(SourceError::NotOnHub {
            repo: id.repo.clone(),
            revision: id.revision.clone(),
            files: weight_files(),
            url: hub.file_url(id, WEIGHT_FILES[0])?.to_string(),
        }
        .into());
    };
    // config.json from the very commit the weights came from, even if the branch moves
    let config = config_at(&hub, cache, id, &weights.commit)?;
    Ok(Source {
        weights: weights.path,
        config,
    })
}

/// The `NAME[.TAG]` a `config.json` describes (`architecture` and `pretrained_cfg.tag`), when the
/// registry knows it; the bare architecture when the tag is not in the registry.
pub fn config_model(config: &Map<String, Value>) -> Option<String> {
    let arch = config.get("architecture")?.as_str()?;
    let known = crate::registry::arch(arch)?;
    let tag = config
        .get("pretrained_cfg")
        .and_then(|c| c.get("tag"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && known.tag(Some(t)).is_some());
    Some(match tag {
        Some(t) => format!("{arch}.{t}"),
        None => arch.to_owned(),
    })
}

/// The pretrained cfg a `config.json` carries, as a registry [`Tag`](crate::registry::Tag): the
/// cfg the weights came with, as timm's `load_model_config_from_hf` reads it. Its
/// `pretrained_cfg` object (or, in the old form without one, the file's own fields), with the
/// file's top-level `num_classes` and `label_names` over it. Every field (`num_classes`,
/// `input_size`, `first_conv`, `classifier`, `label_offset`, `mean`, `std`) is the file's, never
/// the embedded registry's tag of the same name: a fine-tune saved with `save_for_hf` keeps its
/// upstream tag but not its head.
pub fn config_tag(config: &Map<String, Value>) -> Option<crate::registry::Tag> {
    let mut cfg = match config.get("pretrained_cfg") {
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return None,
        None => {
            // timm: "old form, pull pretrain_cfg out of the base dict"
            let mut c = config.clone();
            c.shift_remove("architecture")?;
            c.shift_remove("num_features");
            if let Some(labels) = c.shift_remove("labels") {
                c.insert("label_names".into(), labels);
            }
            c
        }
    };
    for key in ["num_classes", "label_names"] {
        if let Some(v) = config.get(key) {
            cfg.insert(key.into(), v.clone());
        }
    }
    Some(crate::registry::Tag {
        tag: cfg
            .get("tag")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        has_weights: true,
        cfg,
        results: None,
        results_by_size: Vec::new(),
    })
}
