//! Library errors worded with the flags that set what they name: the library speaks of its
//! settings (`allow_unused`, the hub layout, the `download` feature), the CLI of
//! `--allow-unused`, `--layout hub` and `--features download`. Every command's errors go
//! through [`flags`]; `convert` words its conversion settings first
//! ([`convert::flags`](crate::commands::convert::flags)) and falls back to [`message`].

use timmconv::error::{Error, OutputPathError, SourceError, VerifyError};

/// `e` as the CLI reports it: worded with flags where it names something a flag sets, else as
/// the library words it.
pub fn flags(e: Error) -> anyhow::Error {
    match message(&e) {
        Some(msg) => anyhow::anyhow!(msg),
        None => e.into(),
    }
}

/// The flag wording of `e`; `None` when the library's own message names no setting.
pub fn message(e: &Error) -> Option<String> {
    Some(match e {
        Error::WithPath { path, source } => format!("{}: {}", path.display(), message(source)?),
        Error::Source(s) => source(s)?,
        Error::OutputPath(o) => output_path(o)?,
        Error::Verify(v) => verify(v)?,
        _ => return None,
    })
}

fn source(e: &SourceError) -> Option<String> {
    Some(match e {
        SourceError::NoDownload {
            repo,
            revision,
            cache,
        } => format!(
            "hf-hub:{repo}@{revision}: not in the cache {}, and this build has no `download` \
             feature: fetch it with huggingface_hub or build timmconv with --features download",
            cache.display()
        ),
        _ => return None,
    })
}

fn output_path(e: &OutputPathError) -> Option<String> {
    Some(match e {
        OutputPathError::IsAFolder { path } => format!(
            "{} is a folder: give a file name (such as {}), or use --layout hub to write a hub \
             folder",
            path.display(),
            path.join("model.safetensors").display()
        ),
        OutputPathError::NotAFolder { path } => format!(
            "{} is not a folder: --layout hub writes a folder; give a new folder name",
            path.display()
        ),
        _ => return None,
    })
}

fn verify(e: &VerifyError) -> Option<String> {
    Some(match e {
        VerifyError::NoCuda => "--device cuda: no CUDA device is available to libtorch".into(),
        VerifyError::NotInModule { key, name } => {
            format!("tensor `{key}`: the module has no `{name}` (pass --allow-unused to ignore)")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn flag_words_are_the_clis_and_the_rest_is_the_librarys() {
        let folder = Error::OutputPath(OutputPathError::IsAFolder {
            path: PathBuf::from("out"),
        });
        assert_eq!(
            flags(folder).to_string(),
            "out is a folder: give a file name (such as out/model.safetensors), or use --layout \
             hub to write a hub folder"
        );
        let unused = Error::WithPath {
            path: PathBuf::from("w.safetensors"),
            source: Box::new(Error::Verify(VerifyError::NotInModule {
                key: "a".into(),
                name: "b".into(),
            })),
        };
        assert_eq!(
            flags(unused).to_string(),
            "w.safetensors: tensor `a`: the module has no `b` (pass --allow-unused to ignore)"
        );
        let plain = Error::Source(SourceError::BadHubId {
            spec: "hf-hub:x".into(),
        });
        assert_eq!(message(&plain), None);
    }
}
