//! The Hugging Face hub cache as `huggingface_hub` lays it out: where it is
//! (`$HF_HUB_CACHE`, `$HF_HOME/hub`, ...), a repo's folder `models--ORG--REPO` with
//! `refs/{revision}` naming a commit, `snapshots/{commit}/{file}` and `blobs/{etag}`, and the
//! rules a commit or an etag must follow before it becomes one of those path components.
//!
//! Both sides of the cache use this room: [`source`](crate::source) reads it, the `download`
//! module writes it; neither imports the other for it.

use std::path::{Path, PathBuf};

use crate::error::{Result, SourceError};

/// timm's prefix for hub names.
pub const PREFIX: &str = "hf-hub:";
/// Longest etag accepted as a blob name (a SHA-256 is 64, a git blob id 40).
#[cfg_attr(not(feature = "download"), allow(dead_code))]
pub(crate) const MAX_ETAG_LEN: usize = 128;

/// `ORG/REPO` and a revision (a branch, a tag or a commit hash; `main` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `ORG/REPO`.
    pub repo: String,
    /// What follows `@`, else `main`.
    pub revision: String,
}

impl HubId {
    /// `None` when `input` does not start with `hf-hub:`; an error when what follows is not
    /// `ORG/REPO[@REVISION]`.
    pub fn parse(input: &str) -> Option<Result<HubId>> {
        let rest = input.strip_prefix(PREFIX)?;
        let (repo, revision) = match rest.split_once('@') {
            Some((r, v)) => (r, v),
            None => (rest, "main"),
        };
        let ok_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let rev_ok =
            !revision.is_empty() && revision.split('/').all(ok_part) && !revision.starts_with('/');
        if parts.len() != 2 || !parts.iter().all(|p| ok_part(p)) || !rev_ok {
            return Some(Err(SourceError::BadHubId {
                spec: input.to_owned(),
            }
            .into()));
        }
        Some(Ok(HubId {
            repo: repo.to_owned(),
            revision: revision.to_owned(),
        }))
    }

    /// The repo's folder in the cache: `models--ORG--REPO`.
    pub fn folder_name(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }

    pub(crate) fn is_commit(&self) -> bool {
        self.revision.len() == 40 && self.revision.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The same repo at `commit`.
    #[cfg_attr(not(feature = "download"), allow(dead_code))]
    pub(crate) fn at(&self, commit: &str) -> HubId {
        HubId {
            repo: self.repo.clone(),
            revision: commit.to_owned(),
        }
    }
}

/// Where the files of `id` lie in `cache`: the repo's folder and the three kinds of entry in it.
#[derive(Debug, Clone)]
pub(crate) struct RepoDir {
    root: PathBuf,
}

#[cfg_attr(not(feature = "download"), allow(dead_code))]
impl RepoDir {
    pub(crate) fn new(cache: &Path, id: &HubId) -> RepoDir {
        RepoDir {
            root: cache.join(id.folder_name()),
        }
    }

    /// `blobs/`: one file per etag.
    pub(crate) fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `snapshots/{commit}/`: the repo's files at a commit, links into `blobs/`.
    pub(crate) fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// `refs/{revision}`: the commit a branch or tag was last seen at.
    pub(crate) fn ref_file(&self, revision: &str) -> PathBuf {
        self.root.join("refs").join(revision)
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`, as `huggingface_hub`
/// decides it.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = env_path("HF_HUB_CACHE") {
        return p;
    }
    hf_home().join("hub")
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`: the cache's
/// parent, and where the token file lies.
pub(crate) fn hf_home() -> PathBuf {
    if let Some(p) = env_path("HF_HOME") {
        return p;
    }
    let cache = env_path("XDG_CACHE_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("huggingface")
}

/// Whether `HF_HUB_OFFLINE` says not to touch the network (`1`, `ON`, `YES`, `TRUE`).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| ["1", "on", "yes", "true"].contains(&v.trim().to_ascii_lowercase().as_str()))
}

/// The snapshot folder of `id` in `cache`: `refs/REVISION` names the commit, unless the
/// revision is a commit hash itself. `None` when it is not there, or cannot be read.
pub fn snapshot(cache: &Path, id: &HubId) -> Option<PathBuf> {
    snapshot_checked(cache, id).ok().flatten()
}

/// [`snapshot`], with the reasons a `refs/REVISION` is refused: a FIFO, device or link to one
/// (never opened), or a file larger than a commit hash could need
/// ([`MAX_REF_BYTES`](crate::small_file::MAX_REF_BYTES)).
pub(crate) fn snapshot_checked(cache: &Path, id: &HubId) -> Result<Option<PathBuf>> {
    let repo = RepoDir::new(cache, id);
    let commit = if id.is_commit() {
        id.revision.clone()
    } else {
        let refs = repo.ref_file(&id.revision);
        let limit = crate::small_file::MAX_REF_BYTES;
        match crate::small_file::read_text(&refs, "MAX_REF_BYTES", limit)? {
            Some(text) => text.trim().to_owned(),
            None => return Ok(None),
        }
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return Ok(None);
    }
    let dir = repo.snapshot(&commit);
    Ok(dir.is_dir().then_some(dir))
}

/// `file` in the cached snapshot of `id`, if it is there.
pub fn cached(cache: &Path, id: &HubId, file: &str) -> Option<PathBuf> {
    let path = snapshot(cache, id)?.join(file);
    path.is_file().then_some(path)
}

/// A commit as a path component (`X-Repo-Commit`, a snapshot's folder name): exactly 40
/// lowercase hex digits.
#[cfg_attr(not(feature = "download"), allow(dead_code))]
pub(crate) fn checked_commit(raw: &str) -> std::result::Result<String, BadName> {
    let ok = raw.len() == 40 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(BadName {
            header: "X-Repo-Commit",
            value: raw.to_owned(),
            why: "a commit is 40 lowercase hex digits",
        })
    }
}

/// The etag (`X-Linked-Etag` else `ETag`) as a blob name: quotes and a weak `W/` stripped as
/// `huggingface_hub` strips them, then 1 to [`MAX_ETAG_LEN`] characters of `[A-Za-z0-9_-]`.
#[cfg_attr(not(feature = "download"), allow(dead_code))]
pub(crate) fn checked_etag(raw: &str) -> std::result::Result<String, BadName> {
    let bare = raw.trim();
    let bare = bare.strip_prefix("W/").unwrap_or(bare);
    let bare = bare.trim_matches('"');
    let ok = (1..=MAX_ETAG_LEN).contains(&bare.len())
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(bare.to_owned())
    } else {
        Err(BadName {
            header: "ETag",
            value: raw.to_owned(),
            why: "an etag names a file in the cache: 1 to 128 characters of A-Z, a-z, 0-9, _ and -",
        })
    }
}

/// A value the hub sent (in the named header) refused as a cache path component.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "download"), allow(dead_code))]
pub(crate) struct BadName {
    /// The header that carried it.
    pub(crate) header: &'static str,
    /// What it said.
    pub(crate) value: String,
    /// The rule it breaks.
    pub(crate) why: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn commit_must_be_forty_lowercase_hex_digits() {
        assert_eq!(checked_commit(COMMIT).as_deref(), Ok(COMMIT));
        for bad in [
            "",
            "../../x",
            "/etc",
            "0123456789abcdef0123456789abcdef0123456",
            "0123456789abcdef0123456789abcdef012345678",
            "0123456789ABCDEF0123456789abcdef01234567",
            "0123456789abcdef0123456789abcdef0123456/",
            "0123456789abcdef0123456789abcdef0123456\n",
            "g123456789abcdef0123456789abcdef01234567",
            "..23456789abcdef0123456789abcdef01234567",
        ] {
            let e = checked_commit(bad).unwrap_err();
            assert_eq!((e.header, e.value.as_str()), ("X-Repo-Commit", bad));
        }
    }

    #[test]
    fn etag_is_stripped_of_quotes_and_weakness_then_must_be_a_plain_name() {
        assert_eq!(checked_etag(&format!("\"{SHA}\"")).as_deref(), Ok(SHA));
        assert_eq!(checked_etag(&format!("W/\"{SHA}\"")).as_deref(), Ok(SHA));
        assert_eq!(checked_etag("abc_DEF-123").as_deref(), Ok("abc_DEF-123"));
        let longest = "a".repeat(MAX_ETAG_LEN);
        assert_eq!(checked_etag(&longest).as_deref(), Ok(longest.as_str()));
        for bad in [
            "",
            "\"\"",
            "W/",
            "../../escape",
            "\"../../escape\"",
            "/home/user/.bashrc",
            "C:\\x",
            "a/b",
            "a.b",
            ".",
            "..",
            "a b",
            "a\nb",
            "a\u{202e}b",
            &"a".repeat(MAX_ETAG_LEN + 1),
        ] {
            let e = checked_etag(bad).unwrap_err();
            assert_eq!((e.header, e.value.as_str()), ("ETag", bad));
        }
    }

    #[test]
    fn bad_hub_names_are_typed() {
        let e = HubId::parse("hf-hub:org").unwrap().unwrap_err();
        assert!(
            matches!(&e, Error::Source(SourceError::BadHubId { spec }) if spec == "hf-hub:org"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "`hf-hub:org`: a hub name is hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION"
        );
    }

    #[test]
    fn repo_dir_lays_out_blobs_snapshots_and_refs() {
        let id = HubId::parse("hf-hub:org/net@v2").unwrap().unwrap();
        let dir = RepoDir::new(Path::new("/c"), &id);
        assert_eq!(dir.blobs(), Path::new("/c/models--org--net/blobs"));
        assert_eq!(
            dir.snapshot(COMMIT),
            Path::new("/c/models--org--net/snapshots").join(COMMIT)
        );
        assert_eq!(dir.ref_file("v2"), Path::new("/c/models--org--net/refs/v2"));
    }
}
