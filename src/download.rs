//! Downloads one file of a hub repo into the Hugging Face cache, laid out as `huggingface_hub`
//! lays it out (`blobs/{etag}`, `snapshots/{commit}/{file}` linking to it, `refs/{revision}`),
//! trusting nothing the server says.
//!
//! The server names two path components of that layout: the commit (`X-Repo-Commit`) and the
//! blob (`X-Linked-Etag`, else `ETag`). Both are checked on the very response whose body is
//! stored, so a server cannot answer a check one way and the download another. A commit is 40
//! lowercase hex digits and an etag 1 to [`MAX_ETAG_LEN`](crate::hf_cache::MAX_ETAG_LEN)
//! characters of `[A-Za-z0-9_-]`; anything else is refused before the cache is touched (the
//! rules and the layout are [`hf_cache`](crate::hf_cache)'s). The body goes to a temporary file in
//! `blobs/`, is counted against `Content-Length`, and when the etag is a SHA-256 (what the hub
//! sends for LFS files) its hash must match; only then is it renamed into place.
//!
//! The token goes to the endpoint's origin and the Hub's own origins, never further: after a
//! redirect to any other origin (a CDN's signed URL) it is dropped for the rest of the chain, as
//! `huggingface_hub` does.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{printable, Error, Result, SourceError};
use crate::hf_cache::{checked_commit, checked_etag, BadName, HubId, RepoDir};

/// Where files come from without `HF_ENDPOINT`.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Origins that may see the token besides the endpoint's own (`huggingface_hub`'s
/// `_HUB_ORIGINS`: the Hub, its staging host and its short domain).
const HUB_ORIGINS: [&str; 3] = [
    "https://huggingface.co",
    "https://hub-ci.huggingface.co",
    "https://hf.co",
];
/// Redirects followed for one file (ureq's own default).
pub const MAX_REDIRECTS: usize = 5;
/// Largest token file read.
const MAX_TOKEN_FILE_BYTES: u64 = 64 << 10;
/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a read or a write may wait without progress.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK: usize = 256 << 10;

/// A hub endpoint and the credentials to use on it.
pub(crate) struct Hub {
    agent: ureq::Agent,
    endpoint: Url,
    token: Option<String>,
}

/// A file stored in the cache, and the commit it was served at.
pub(crate) struct Fetched {
    /// `snapshots/{commit}/{file}`.
    pub path: PathBuf,
    /// The validated commit hash.
    pub commit: String,
}

/// The hub headers that name the cache paths, as one response sent them.
struct Names {
    commit: String,
    etag: Option<String>,
}

impl Hub {
    /// The endpoint from `HF_ENDPOINT` (else [`DEFAULT_ENDPOINT`]) and the token from `HF_TOKEN`
    /// (else `HUGGING_FACE_HUB_TOKEN`, else the file `HF_TOKEN_PATH`, else `$HF_HOME/token`).
    pub fn from_env(hf_home: &Path) -> Result<Hub> {
        let raw = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let endpoint = parse_endpoint(&raw)?;
        let token = token_from_env(hf_home)?;
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(IDLE_TIMEOUT)
            .timeout_write(IDLE_TIMEOUT)
            .try_proxy_from_env(true)
            .user_agent(concat!("timmconv/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Hub {
            agent,
            endpoint,
            token,
        })
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{file}`, with `/` in the revision as `%2F`.
    pub fn file_url(&self, id: &HubId, file: &str) -> Result<Url> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        let text = format!(
            "{base}/{}/resolve/{}/{file}",
            id.repo,
            id.revision.replace('/', "%2F")
        );
        Url::parse(&text).map_err(|e| Error::Download {
            url: printable(&text).into_owned(),
            what: format!("not a URL: {e}"),
        })
    }

    /// Downloads `file` of `id` into `cache`: `Ok(None)` when the hub says the file is not in
    /// the repo (a 404 without an error code, or `EntryNotFound`); every other failure is an
    /// error naming the URL. `limit` bounds the body; `progress(done, total)` follows it, called
    /// once at the end when the server does not say how long it is.
    pub fn fetch(
        &self,
        cache: &Path,
        id: &HubId,
        file: &str,
        limit: Option<u64>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Option<Fetched>> {
        let url = self.file_url(id, file)?;
        let Some((response, names)) = self.get(&url)? else {
            return Ok(None);
        };
        let at = response.get_url().to_owned();
        let fail = |what: String| Error::Download {
            url: printable(&at).into_owned(),
            what,
        };
        // every name is checked before anything is created in the cache
        let commit = checked_commit(&names.commit).map_err(|why| bad_header(&at, &why))?;
        let etag = match &names.etag {
            Some(e) => checked_etag(e).map_err(|why| bad_header(&at, &why))?,
            None => return Err(fail("the response has no ETag (nor X-Linked-Etag)".into())),
        };
        if id.is_commit() && !commit.eq_ignore_ascii_case(&id.revision) {
            return Err(fail(format!(
                "asked for commit {} and was served commit {commit}",
                id.revision
            )));
        }
        if let Some(enc) = single(&response, "Content-Encoding").map_err(&fail)? {
            if !enc.eq_ignore_ascii_case("identity") {
                return Err(fail(format!(
                    "the body is sent with Content-Encoding `{}`; only the file's own bytes are \
                     accepted",
                    printable(enc)
                )));
            }
        }
        let declared =
            match single(&response, "Content-Length").map_err(&fail)? {
                Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                    fail(format!("Content-Length `{}` is not a number", printable(v)))
                })?),
                None => None,
            };
        if let (Some(n), Some(max)) = (declared, limit) {
            if n > max {
                return Err(fail(format!(
                    "{file} is {n} bytes, more than the {max} this file may have"
                )));
            }
        }

        let repo = RepoDir::new(cache, id);
        let blobs = repo.blobs();
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".timmconv-")
            .suffix(".incomplete")
            .tempfile_in(&blobs)
            .map_err(|e| Error::io(&blobs, e))?;
        let mut hasher = Sha256::new();
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; CHUNK];
        let mut done: u64 = 0;
        if let Some(total) = declared {
            progress(0, total);
        }
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(format!("reading the body after {done} bytes: {e}"))),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            done = done.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            if let Some(max) = limit {
                if done > max {
                    return Err(fail(format!(
                        "{file} is more than the {max} bytes this file may have"
                    )));
                }
            }
            if let Some(n) = declared {
                if done > n {
                    return Err(fail(format!(
                        "the body is longer than its Content-Length {n}"
                    )));
                }
            }
            hasher.update(chunk);
            tmp.write_all(chunk).map_err(|e| Error::io(tmp.path(), e))?;
            if let Some(total) = declared {
                progress(done, total);
            }
        }
        if let Some(n) = declared {
            if done != n {
                return Err(fail(format!(
                    "the body has {done} bytes, its Content-Length says {n}"
                )));
            }
        }
        if is_sha256(&etag) {
            let actual = hex(&hasher.finalize());
            if !actual.eq_ignore_ascii_case(&etag) {
                return Err(fail(format!(
                    "the body's SHA-256 is {actual}, the server's ETag says {etag}"
                )));
            }
        }
        tmp.flush().map_err(|e| Error::io(tmp.path(), e))?;
        progress(done, done);

        let blob = blobs.join(&etag);
        tmp.persist(&blob).map_err(|e| Error::io(&blob, e.error))?;
        let snapshot = repo.snapshot(&commit);
        std::fs::create_dir_all(&snapshot).map_err(|e| Error::io(&snapshot, e))?;
        let pointer = snapshot.join(file);
        link_blob(&blob, &etag, &pointer)?;
        if !id.is_commit() {
            write_ref(&repo.ref_file(&id.revision), &commit)?;
        }
        Ok(Some(Fetched {
            path: pointer,
            commit,
        }))
    }

    /// GETs `url`, following up to [`MAX_REDIRECTS`] redirects by hand so that the token never
    /// leaves the Hub: `None` for a missing file, else the final 200 response and the names the
    /// last response that carried `X-Repo-Commit` gave.
    fn get(&self, start: &Url) -> Result<Option<(ureq::Response, Names)>> {
        let mut url = start.clone();
        let mut send_token = self.token.is_some() && self.may_see_token(&url);
        let mut names = None;
        for hop in 0..=MAX_REDIRECTS {
            let fail = |what: String| Error::Download {
                url: printable(url.as_str()).into_owned(),
                what,
            };
            let mut request = self
                .agent
                .request_url("GET", &url)
                .set("Accept-Encoding", "identity");
            if let (true, Some(token)) = (send_token, &self.token) {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            let response = match request.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(status, r)) => {
                    let code = r.header("X-Error-Code").map(str::to_owned);
                    if status == 404 && matches!(code.as_deref(), None | Some("EntryNotFound")) {
                        return Ok(None);
                    }
                    return Err(fail(status_text(status, &r)));
                }
                Err(ureq::Error::Transport(t)) => return Err(fail(transport_text(&t))),
            };
            if let Some(commit) = single(&response, "X-Repo-Commit").map_err(&fail)? {
                let etag = match single(&response, "X-Linked-Etag").map_err(&fail)? {
                    Some(e) => Some(e),
                    None => single(&response, "ETag").map_err(&fail)?,
                };
                names = Some(Names {
                    commit: commit.to_owned(),
                    etag: etag.map(str::to_owned),
                });
            }
            let status = response.status();
            if !(300..400).contains(&status) {
                if status != 200 {
                    return Err(fail(format!("unexpected status {status}")));
                }
                let Some(names) = names else {
                    return Err(fail(
                        "no response carried X-Repo-Commit: this is not a Hugging Face hub".into(),
                    ));
                };
                return Ok(Some((response, names)));
            }
            if hop == MAX_REDIRECTS {
                return Err(fail(format!("more than {MAX_REDIRECTS} redirects")));
            }
            let Some(location) = single(&response, "Location").map_err(&fail)? else {
                return Err(fail(format!("a {status} redirect without Location")));
            };
            let next = url.join(location).map_err(|e| {
                fail(format!(
                    "redirect to `{}`, not a URL: {e}",
                    printable(location)
                ))
            })?;
            if !matches!(next.scheme(), "http" | "https")
                || (url.scheme() == "https" && next.scheme() == "http")
            {
                return Err(fail(format!(
                    "refusing a redirect from {} to {}",
                    url.scheme(),
                    printable(next.as_str())
                )));
            }
            // once off the Hub, the token stays off for the rest of the chain
            send_token = send_token && self.may_see_token(&next);
            url = next;
        }
        Err(Error::Download {
            url: printable(url.as_str()).into_owned(),
            what: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Whether `url` is served by the endpoint's origin or one of [`HUB_ORIGINS`].
    fn may_see_token(&self, url: &Url) -> bool {
        may_see_token(&self.endpoint, url)
    }
}

/// Whether the token may go to `url` when it was given for `endpoint`: same scheme, host and
/// port as the endpoint, or one of the Hub's own origins.
pub(crate) fn may_see_token(endpoint: &Url, url: &Url) -> bool {
    let origin = url.origin();
    origin == endpoint.origin()
        || HUB_ORIGINS
            .iter()
            .filter_map(|o| Url::parse(o).ok())
            .any(|o| o.origin() == origin)
}

fn parse_endpoint(raw: &str) -> Result<Url> {
    let bad = |why: &str| -> Error {
        SourceError::BadEndpoint {
            endpoint: printable(raw.trim_end_matches('/')).into_owned(),
            why: why.to_owned(),
        }
        .into()
    };
    let url = Url::parse(raw.trim().trim_end_matches('/'))
        .map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("must not carry a query, a fragment or credentials"));
    }
    Ok(url)
}

fn token_from_env(hf_home: &Path) -> Result<Option<String>> {
    let env = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"].iter().find_map(|k| {
        std::env::var(k)
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| (*k, t))
    });
    let (source, raw) = match env {
        Some((k, t)) => (k.to_owned(), t),
        None => {
            let path = std::env::var_os("HF_TOKEN_PATH")
                .filter(|p| !p.is_empty())
                .map_or_else(|| hf_home.join("token"), PathBuf::from);
            // a regular file only: a FIFO at HF_TOKEN_PATH would block forever
            let Some(text) =
                crate::small_file::read_text(&path, "MAX_TOKEN_FILE_BYTES", MAX_TOKEN_FILE_BYTES)?
            else {
                return Ok(None);
            };
            (path.display().to_string(), text)
        }
    };
    // huggingface_hub's _clean_token
    let token = raw.replace(['\r', '\n'], "").trim().to_owned();
    if token.is_empty() {
        return Ok(None);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(SourceError::BadToken { from: source }.into());
    }
    Ok(Some(token))
}

/// The one value of header `name`: `None` when absent, an error when sent more than once (two
/// answers to one question are refused, not picked from).
fn single<'r>(
    response: &'r ureq::Response,
    name: &str,
) -> std::result::Result<Option<&'r str>, String> {
    match response.all(name).as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(format!("the {name} header is sent {} times", many.len())),
    }
}

fn bad_header(url: &str, e: &BadName) -> Error {
    Error::Download {
        url: printable(url).into_owned(),
        what: format!(
            "refusing the server's {} `{}` ({}); nothing was written to the cache",
            e.header,
            printable(&e.value),
            e.why
        ),
    }
}

fn is_sha256(etag: &str) -> bool {
    etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn status_text(status: u16, r: &ureq::Response) -> String {
    let mut s = format!("HTTP {status}");
    let text = r.status_text();
    if !text.is_empty() {
        s.push(' ');
        s.push_str(&printable(text));
    }
    if let Some(code) = r.header("X-Error-Code") {
        s.push_str(&format!(" ({})", printable(code)));
    }
    if let Some(msg) = r.header("X-Error-Message") {
        let msg: String = msg.chars().take(300).collect();
        s.push_str(&format!(": {}", printable(&msg)));
    }
    if matches!(status, 401 | 403) {
        s.push_str("; a private or gated repo needs HF_TOKEN");
    }
    s
}

fn transport_text(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(&printable(m));
    }
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(&format!(": {}", printable(&src.to_string())));
    }
    s
}

/// `pointer` as the relative symlink `../../blobs/{etag}` huggingface_hub makes, else (where
/// symlinks are not allowed) a copy of the blob. Made under a temporary name beside it and
/// renamed over it, so that two processes fetching the same file (`batch --jobs`) each leave a
/// whole link and never fail on the other's.
fn link_blob(blob: &Path, etag: &str, pointer: &Path) -> Result<()> {
    let dir = pointer.parent().unwrap_or(Path::new("."));
    let target = Path::new("..").join("..").join("blobs").join(etag);
    let staged = tempfile::Builder::new()
        .prefix(".timmconv-")
        .suffix(".link")
        .make_in(dir, |p| symlink(&target, p));
    if let Ok(link) = staged {
        link.persist(pointer)
            .map_err(|e| Error::io(pointer, e.error))?;
        return Ok(());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".timmconv-")
        .suffix(".incomplete")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    std::fs::copy(blob, tmp.path()).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(pointer)
        .map_err(|e| Error::io(pointer, e.error))?;
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
fn symlink(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// `refs/{revision}` = `commit`, replaced whole (a reader never sees half a hash).
fn write_ref(path: &Path, commit: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".timmconv-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(commit.as_bytes())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn refused_header_values_are_escaped_in_the_message() {
        let e = checked_etag("x\u{1b}[2J/../y").unwrap_err();
        let msg = bad_header("http://h/f", &e).to_string();
        assert!(msg.contains("ETag `x\\u{1b}[2J/../y`"), "{msg}");
        assert!(!msg.contains('\u{1b}'));
    }

    #[test]
    fn token_stays_on_the_endpoint_and_the_hub() {
        let mirror = Url::parse("http://mirror.example:8080/hf").unwrap();
        let yes = [
            "http://mirror.example:8080/other/path",
            "https://huggingface.co/x",
            "https://hf.co/x",
            "https://hub-ci.huggingface.co/x",
        ];
        let no = [
            "http://mirror.example:8081/x",
            "https://mirror.example:8080/x",
            "http://cdn.example/x",
            "http://huggingface.co/x",
            "https://cdn-lfs.huggingface.co/x",
            "https://huggingface.co.evil.example/x",
        ];
        for u in yes {
            assert!(may_see_token(&mirror, &Url::parse(u).unwrap()), "{u}");
        }
        for u in no {
            assert!(!may_see_token(&mirror, &Url::parse(u).unwrap()), "{u}");
        }
        let hub = Url::parse(DEFAULT_ENDPOINT).unwrap();
        assert!(may_see_token(
            &hub,
            &Url::parse("https://huggingface.co:443/a").unwrap()
        ));
        assert!(!may_see_token(
            &hub,
            &Url::parse("https://cas-bridge.xethub.hf.co/a").unwrap()
        ));
    }

    #[test]
    fn endpoint_must_be_a_plain_http_url() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9/mirror/")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/mirror"
        );
        for bad in [
            "",
            "huggingface.co",
            "file:///etc",
            "ftp://x",
            "http://u:p@h",
            "http://h/?q",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn snapshot_link_is_relative_and_replaces_what_was_there() {
        let repo = tempfile::tempdir().unwrap();
        let blobs = repo.path().join("blobs");
        let snap = repo.path().join("snapshots").join(COMMIT);
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(blobs.join(SHA), b"new").unwrap();
        let pointer = snap.join("model.safetensors");
        // a dangling link from an earlier, interrupted download
        symlink(Path::new("../../blobs/gone"), &pointer).unwrap();
        link_blob(&blobs.join(SHA), SHA, &pointer).unwrap();
        link_blob(&blobs.join(SHA), SHA, &pointer).unwrap();
        assert_eq!(std::fs::read(&pointer).unwrap(), b"new");
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(&pointer).unwrap(),
            Path::new("../../blobs").join(SHA)
        );
        let names: Vec<_> = std::fs::read_dir(&snap).unwrap().collect();
        assert_eq!(names.len(), 1, "no staging name left behind");
    }

    #[test]
    fn sha256_etags_are_recognised() {
        assert!(is_sha256(SHA));
        assert!(!is_sha256(COMMIT));
        assert_eq!(hex(&Sha256::digest(b"")), SHA);
    }
}
