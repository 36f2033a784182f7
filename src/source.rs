//! Where a checkpoint comes from: a file path, `local-dir:FOLDER` (a folder laid out like a hub
//! repo) or `hf-hub:ORG/REPO[@REVISION]` (timm's own prefixes). Hub names are found in the
//! Hugging Face cache exactly where `huggingface_hub` puts them, so Python and timmconv share one
//! cache; with the `hub-download` feature a name that is not cached is downloaded into it.
//!
//! ```no_run
//! let src = timmconv::source::resolve("hf-hub:timm/resnet18.a1_in1k", &mut |_, _, _| {})?;
//! println!("weights {} config {:?}", src.weights.display(), src.config);
//! # Ok::<(), timmconv::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::registry::Tag;

/// timm's prefix for a Hugging Face Hub model (`timm.create_model('hf-hub:timm/resnet50.a1_in1k')`).
pub const HF_HUB_PREFIX: &str = "hf-hub:";
/// timm's prefix for a local folder laid out like a hub repo.
pub const LOCAL_DIR_PREFIX: &str = "local-dir:";
/// The weight files timm looks for in a hub repo, in its order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];
/// The file holding the architecture and pretrained cfg of a hub repo.
pub const CONFIG_FILE: &str = "config.json";
/// The revision used when a hub name gives none.
pub const DEFAULT_REVISION: &str = "main";
/// Largest `config.json` read (timm's are a few KiB; label names can make them larger).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Longest repo id huggingface_hub accepts.
const MAX_REPO_ID: usize = 96;

/// A model repo on the Hugging Face Hub and the revision asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubRepo {
    /// `ORG/REPO` (or a bare `REPO`).
    pub repo_id: String,
    /// A branch, tag or commit (`main` when none was given).
    pub revision: String,
}

impl HubRepo {
    /// Parses `ORG/REPO[@REVISION]` (what follows `hf-hub:`), checking the repo id the way
    /// huggingface_hub's `validate_repo_id` does so that no name can reach outside the cache.
    pub fn parse(spec: &str) -> Result<HubRepo> {
        let (repo_id, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (spec, DEFAULT_REVISION),
        };
        let bad = |why: &str| Error::Options(format!("{HF_HUB_PREFIX}{spec}: {why}"));
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && !p.starts_with(['-', '.'])
                && !p.ends_with(['-', '.'])
        };
        let parts: Vec<&str> = repo_id.split('/').collect();
        if parts.len() > 2
            || !parts.iter().all(|p| part_ok(p))
            || repo_id.contains("--")
            || repo_id.contains("..")
            || repo_id.len() > MAX_REPO_ID
        {
            return Err(bad(
                "not a repo id (ORG/REPO: letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96 characters)",
            ));
        }
        if revision.is_empty()
            || revision
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            || !revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        {
            return Err(bad(
                "the revision after `@` is empty or not a branch, tag or commit",
            ));
        }
        Ok(HubRepo {
            repo_id: repo_id.to_owned(),
            revision: revision.to_owned(),
        })
    }

    /// The repo's folder in the cache (`models--ORG--REPO`).
    pub fn cache_folder(&self, cache: &Path) -> PathBuf {
        cache.join(format!("models--{}", self.repo_id.replace('/', "--")))
    }

    /// `hf-hub:ORG/REPO@REVISION`.
    pub fn display_name(&self) -> String {
        format!("{HF_HUB_PREFIX}{}@{}", self.repo_id, self.revision)
    }
}

/// Where the weights of an input were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// A checkpoint file given by path.
    File,
    /// A folder given as `local-dir:`.
    LocalDir {
        /// The folder.
        folder: PathBuf,
    },
    /// A hub repo, from the cache or downloaded into it.
    Hub {
        /// The repo and revision asked for.
        repo: HubRepo,
        /// The commit the revision resolved to.
        commit: String,
        /// Whether the weights were downloaded now (else the cache had them).
        downloaded: bool,
    },
}

/// An input resolved to files on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// The checkpoint to read.
    pub weights: PathBuf,
    /// The repo's `config.json`, when the input is a hub repo or folder that has one.
    pub config: Option<PathBuf>,
    /// Where it came from.
    pub origin: Origin,
}

impl Source {
    /// The parsed `config.json`, if there is one.
    pub fn hub_config(&self) -> Result<Option<HubConfig>> {
        self.config.as_deref().map(HubConfig::read).transpose()
    }
}

/// A hub repo's `config.json` as timm writes it (`save_config_for_hf`) and reads it
/// (`load_model_config_from_hf`): the architecture and its pretrained cfg.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// `architecture`.
    pub architecture: String,
    /// The pretrained cfg, with the top-level `num_classes` folded in as timm does.
    pub cfg: Tag,
}

impl HubConfig {
    /// Reads and checks a `config.json`.
    pub fn read(path: &Path) -> Result<HubConfig> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        Error::at_most(
            "MAX_CONFIG_BYTES",
            usize::try_from(len).unwrap_or(usize::MAX),
            usize::try_from(MAX_CONFIG_BYTES).unwrap_or(usize::MAX),
            || "config.json size",
        )
        .map_err(|e| e.with_path(path))?;
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|e| e.with_path(path))
    }

    /// Parses the text of a `config.json`.
    pub fn parse(text: &str) -> Result<HubConfig> {
        let bad = |what: &str| Error::Structure(format!("config.json: {what}"));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let Value::Object(top) = v else {
            return Err(bad("not a JSON object"));
        };
        // timm reads `architecture`, and falls back to `model_type` for old configs
        let architecture = top
            .get("architecture")
            .or_else(|| top.get("model_type"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("no `architecture` string"))?
            .to_owned();
        let mut cfg: Map<String, Value> = match top.get("pretrained_cfg") {
            Some(Value::Object(c)) => c.clone(),
            None => Map::new(),
            Some(_) => return Err(bad("`pretrained_cfg` is not an object")),
        };
        if let Some(n) = top.get("num_classes") {
            cfg.insert("num_classes".into(), n.clone());
        }
        let tag = cfg
            .get("tag")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(HubConfig {
            architecture,
            cfg: Tag {
                tag,
                has_weights: true,
                cfg,
                results: None,
            },
        })
    }
}

/// The Hugging Face hub cache, as huggingface_hub finds it: `$HF_HUB_CACHE` (or the older
/// `$HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
/// else `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(c) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
        return Some(c);
    }
    if let Some(h) = var("HF_HOME") {
        return Some(h.join("hub"));
    }
    let cache = var("XDG_CACHE_HOME").or_else(|| {
        var("HOME")
            .or_else(|| var("USERPROFILE"))
            .map(|h| h.join(".cache"))
    })?;
    Some(cache.join("huggingface").join("hub"))
}

/// Whether `HF_HUB_OFFLINE` is set to a true value (`1`, `ON`, `YES`, `TRUE`, as huggingface_hub
/// reads it).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_uppercase().as_str(),
            "1" | "ON" | "YES" | "TRUE"
        )
    })
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first of `WEIGHT_FILES` that is a file in `folder`, and its `config.json` if any.
fn pick_files(folder: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
    let weights = WEIGHT_FILES
        .iter()
        .map(|f| folder.join(f))
        .find(|p| p.is_file())?;
    let config = Some(folder.join(CONFIG_FILE)).filter(|p| p.is_file());
    Some((weights, config))
}

/// Looks `repo` up in the cache: `refs/REVISION` names the commit (a 40-digit revision is the
/// commit), `snapshots/COMMIT/` holds the files. `None` when the weights are not cached.
pub fn find_cached(repo: &HubRepo, cache: &Path) -> Result<Option<Source>> {
    let folder = repo.cache_folder(cache);
    let commit = if is_commit(&repo.revision) {
        repo.revision.clone()
    } else {
        let refs = folder.join("refs").join(&repo.revision);
        match std::fs::read_to_string(&refs) {
            Ok(c) => c.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(refs, e)),
        }
    };
    if !is_commit(&commit) {
        return Err(Error::Structure(format!(
            "{}: refs/{} does not hold a commit hash",
            folder.display(),
            repo.revision
        )));
    }
    let snapshot = folder.join("snapshots").join(&commit);
    Ok(pick_files(&snapshot).map(|(weights, config)| Source {
        weights,
        config,
        origin: Origin::Hub {
            repo: repo.clone(),
            commit,
            downloaded: false,
        },
    }))
}

/// Receives download progress: `(file name, bytes done, bytes total)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Resolves an input: `hf-hub:ORG/REPO[@REVISION]` from the cache (downloading it there when
/// it is missing, `HF_HUB_OFFLINE` is not set and the `hub-download` feature is on),
/// `local-dir:FOLDER`, or a checkpoint path (returned as is; opening it checks it).
pub fn resolve(input: &str, progress: Progress<'_>) -> Result<Source> {
    if let Some(spec) = input.strip_prefix(HF_HUB_PREFIX) {
        let repo = HubRepo::parse(spec)?;
        return resolve_hub(&repo, progress);
    }
    if let Some(folder) = input.strip_prefix(LOCAL_DIR_PREFIX) {
        let folder = PathBuf::from(folder);
        let (weights, config) = pick_files(&folder).ok_or_else(|| {
            Error::io(
                &folder,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "holds neither {} (a hub-layout folder has one of them and config.json)",
                        WEIGHT_FILES.join(" nor ")
                    ),
                ),
            )
        })?;
        return Ok(Source {
            weights,
            config,
            origin: Origin::LocalDir { folder },
        });
    }
    let path = PathBuf::from(input);
    if path.is_dir() && pick_files(&path).is_some() {
        return Err(Error::io(
            &path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "is a folder, not a checkpoint file; it looks like a hub repo: give \
                     {LOCAL_DIR_PREFIX}{input} to read its weights and config.json"
                ),
            ),
        ));
    }
    Ok(Source {
        weights: path,
        config: None,
        origin: Origin::File,
    })
}

/// Resolves a hub repo in the cache, downloading what is missing when allowed.
pub fn resolve_hub(repo: &HubRepo, progress: Progress<'_>) -> Result<Source> {
    let name = repo.display_name();
    let cache = hub_cache_dir().ok_or_else(|| {
        Error::Options(format!(
            "{name}: no Hugging Face cache folder (set HF_HUB_CACHE or HF_HOME)"
        ))
    })?;
    if let Some(found) = find_cached(repo, &cache)? {
        return Ok(found);
    }
    if offline() {
        return Err(Error::Options(format!(
            "{name} is not in the Hugging Face cache {} (looked for refs/{} and {} in its \
             snapshot) and HF_HUB_OFFLINE is set; unset it to download, or download it with \
             huggingface_hub first",
            repo.cache_folder(&cache).display(),
            repo.revision,
            WEIGHT_FILES.join(" or ")
        )));
    }
    download(repo, &cache, progress)
}

#[cfg(not(feature = "hub-download"))]
fn download(repo: &HubRepo, cache: &Path, _: Progress<'_>) -> Result<Source> {
    Err(Error::Options(format!(
        "{} is not in the Hugging Face cache {}, and this timmconv was built without the \
         `hub-download` feature; download it with huggingface_hub first",
        repo.display_name(),
        repo.cache_folder(cache).display()
    )))
}

#[cfg(feature = "hub-download")]
fn download(repo: &HubRepo, cache: &Path, progress: Progress<'_>) -> Result<Source> {
    download::fetch(repo, cache, progress)
}

#[cfg(feature = "hub-download")]
mod download {
    //! Downloads with the `hf-hub` crate into huggingface_hub's cache layout.

    use std::path::{Path, PathBuf};

    use hf_hub::api::sync::{ApiBuilder, ApiError};
    use hf_hub::{Cache, Repo, RepoType};

    use super::{HubRepo, Origin, Progress, Source, CONFIG_FILE, WEIGHT_FILES};
    use crate::error::{Error, Result};

    /// Adapts our callback to hf-hub's progress trait.
    struct Reporter<'a, 'b> {
        file: String,
        done: u64,
        total: u64,
        sink: &'a mut Progress<'b>,
    }

    impl hf_hub::api::Progress for Reporter<'_, '_> {
        fn init(&mut self, size: usize, filename: &str) {
            self.file = filename.to_owned();
            self.total = size as u64;
            self.done = 0;
            (self.sink)(&self.file, 0, self.total);
        }
        fn update(&mut self, size: usize) {
            self.done = self.done.saturating_add(size as u64);
            (self.sink)(&self.file, self.done, self.total);
        }
        fn finish(&mut self) {}
    }

    fn not_found(e: &ApiError) -> bool {
        matches!(e, ApiError::RequestError(r) if matches!(**r, ureq::Error::Status(404, _)))
    }

    /// Most relative redirects followed while checking a file's headers.
    const MAX_REDIRECTS: usize = 5;

    /// Asks the server for a file's headers the way hf-hub will (a one-byte range, relative
    /// redirects followed) and checks what hf-hub builds paths from: the commit names the
    /// snapshot folder and the ETag the blob, so neither may hold anything but hex digits and
    /// the like. `Ok(false)` when the file does not exist (HTTP 404).
    fn preflight(url: &str, token: Option<&str>) -> std::result::Result<bool, String> {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let mut url = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = agent.get(&url).set("Range", "bytes=0-0");
            if let Some(t) = token {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(404, _)) => return Ok(false),
                Err(e) => return Err(e.to_string()),
            };
            if (300..400).contains(&resp.status()) {
                let Some(next) = resp.header("Location") else {
                    return Err(format!("HTTP {} without a Location", resp.status()));
                };
                if next.contains("://") {
                    break; // hf-hub follows an absolute redirect (a CDN) itself
                }
                let base = url::Url::parse(&url).map_err(|e| e.to_string())?;
                url = base.join(next).map_err(|e| e.to_string())?.to_string();
                continue;
            }
            let commit = resp.header("x-repo-commit").unwrap_or_default();
            if !super::is_commit(commit) {
                return Err(format!(
                    "the server's X-Repo-Commit `{}` is not a 40-digit commit hash",
                    crate::error::printable(commit)
                ));
            }
            let etag = resp
                .header("x-linked-etag")
                .or_else(|| resp.header("etag"))
                .unwrap_or_default()
                .replace('"', "");
            let etag = etag.strip_prefix("W/").unwrap_or(&etag);
            if etag.is_empty()
                || etag.len() > 128
                || !etag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            {
                return Err(format!(
                    "the server's ETag `{}` is not a blob name",
                    crate::error::printable(etag)
                ));
            }
            return Ok(true);
        }
        Ok(true)
    }

    /// `HF_TOKEN`, else the file at `HF_TOKEN_PATH`, else hf-hub's default token file.
    fn token(cache: &Cache) -> Option<String> {
        if let Some(t) = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            return Some(t.trim().to_owned());
        }
        if let Some(p) = std::env::var_os("HF_TOKEN_PATH").filter(|p| !p.is_empty()) {
            return std::fs::read_to_string(p)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
        }
        cache.token()
    }

    pub(super) fn fetch(
        repo: &HubRepo,
        cache_dir: &Path,
        mut progress: Progress<'_>,
    ) -> Result<Source> {
        let name = repo.display_name();
        let fail = |what: String| Error::Options(format!("{name}: {what}"));
        let cache = Cache::new(cache_dir.to_path_buf());
        let mut builder = ApiBuilder::from_cache(cache.clone())
            .with_progress(false)
            .with_retries(2)
            .with_token(token(&cache));
        if let Some(endpoint) = std::env::var("HF_ENDPOINT")
            .ok()
            .map(|e| e.trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty())
        {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder
            .build()
            .map_err(|e| fail(format!("cannot set up the download client: {e}")))?;
        let handle = api.repo(Repo::with_revision(
            repo.repo_id.clone(),
            RepoType::Model,
            repo.revision.clone(),
        ));
        let token = token(&cache);
        let exists = |file: &str| {
            preflight(&handle.url(file), token.as_deref()).map_err(|e| {
                fail(format!(
                    "downloading {file} from {} failed: {e}",
                    handle.url(file)
                ))
            })
        };
        let mut weights: Option<PathBuf> = None;
        let mut missing = Vec::new();
        for file in WEIGHT_FILES {
            if !exists(file)? {
                missing.push(file);
                continue;
            }
            let reporter = Reporter {
                file: file.to_owned(),
                done: 0,
                total: 0,
                sink: &mut progress,
            };
            match handle.download_with_progress(file, reporter) {
                Ok(p) => {
                    weights = Some(p);
                    break;
                }
                Err(e) if not_found(&e) => missing.push(file),
                Err(e) => {
                    return Err(fail(format!(
                        "downloading {file} from {} failed: {e}",
                        handle.url(file)
                    )))
                }
            }
        }
        let Some(weights) = weights else {
            return Err(fail(format!(
                "the repo has neither {} (HTTP 404 for both)",
                missing.join(" nor ")
            )));
        };
        let config = match exists(CONFIG_FILE)? {
            false => None,
            true => Some(()),
        };
        let config = match config.map(|()| handle.download_with_progress(CONFIG_FILE, ())) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) if not_found(&e) => None,
            Some(Err(e)) => {
                return Err(fail(format!(
                    "downloading {CONFIG_FILE} from {} failed: {e}",
                    handle.url(CONFIG_FILE)
                )))
            }
        };
        // the snapshot folder's name is the commit the revision resolved to
        let commit = weights
            .parent()
            .and_then(Path::file_name)
            .and_then(|c| c.to_str())
            .unwrap_or_default()
            .to_owned();
        Ok(Source {
            weights,
            config,
            origin: Origin::Hub {
                repo: repo.clone(),
                commit,
                downloaded: true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_checked_like_huggingface_hub() {
        let r = HubRepo::parse("timm/resnet18.a1_in1k@v1.0").unwrap();
        assert_eq!(r.repo_id, "timm/resnet18.a1_in1k");
        assert_eq!(r.revision, "v1.0");
        assert_eq!(HubRepo::parse("gpt2").unwrap().revision, "main");
        for bad in [
            "",
            "a/b/c",
            "../x",
            "a/..",
            "org--x/y",
            "a/b@",
            "a/b@../../etc",
            "a/b@refs//x",
            "a/b@x y",
            "a/b@x?y",
            "-a/b",
            "a b/c",
        ] {
            assert!(HubRepo::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HubRepo::parse("a/b").unwrap().cache_folder(Path::new("/c")),
            Path::new("/c/models--a--b")
        );
    }

    #[test]
    fn config_num_classes_overrides_the_pretrained_cfg_as_timm_reads_it() {
        let c = HubConfig::parse(
            r#"{"architecture": "resnet18", "num_classes": 10, "pretrained_cfg":
               {"tag": "a1_in1k", "num_classes": 1000, "first_conv": "conv1",
                "classifier": "fc", "input_size": [3, 224, 224]}}"#,
        )
        .unwrap();
        assert_eq!(c.architecture, "resnet18");
        assert_eq!(c.cfg.tag, "a1_in1k");
        assert_eq!(c.cfg.num_classes(), Some(10));
        assert_eq!(c.cfg.first_conv(), ["conv1"]);
        assert_eq!(c.cfg.in_chans(), Some(3));
        assert!(HubConfig::parse("[]").is_err());
        assert!(HubConfig::parse(r#"{"num_classes": 3}"#).is_err());
    }
}
