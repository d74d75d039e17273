//! The crate's only I/O: reading a schema-set folder into `(path, text)` pairs for the pure
//! loader ([`SchemaSet::from_sources`]).

use std::fs;
use std::path::{Path, PathBuf};

use mutatis_lens::Transforms;

use crate::error::{ErrorKind, SchemaError};
use crate::parse::{self, EXTENSIONS};
use crate::set::SchemaSet;

/// Folders nested deeper than this are not read: a schema set is a small, flat folder, and the
/// bound keeps a stray link or a huge tree from turning a load into a crawl.
const MAX_DEPTH: usize = 8;

impl SchemaSet {
    /// Load the schema-set folder `dir` (see the crate docs for its layout).
    pub fn load(dir: impl AsRef<Path>) -> Result<SchemaSet, SchemaError> {
        SchemaSet::load_with(dir, &Transforms::new())
    }

    /// Load the schema-set folder `dir`, compiling its lenses with the named `transforms` that
    /// the embedding program registered.
    ///
    /// Errors name files joined onto `dir`, so that they can be opened as printed.
    pub fn load_with(
        dir: impl AsRef<Path>,
        transforms: &Transforms,
    ) -> Result<SchemaSet, SchemaError> {
        let dir = dir.as_ref();
        let files = read_folder(dir).map_err(|e| e.under(dir))?;
        SchemaSet::from_sources_with(files, transforms).map_err(|e| e.under(dir))
    }

    /// Load a schema set from its files, already read: `(path relative to the folder, text)`.
    /// This is [`SchemaSet::load`] without the I/O. Files other than `mutatis.yaml`,
    /// `types/*.{yaml,yml,json}` and the lens files those name are ignored.
    pub fn from_sources(files: Vec<(PathBuf, String)>) -> Result<SchemaSet, SchemaError> {
        SchemaSet::from_sources_with(files, &Transforms::new())
    }

    /// [`SchemaSet::from_sources`] with registered transforms.
    pub fn from_sources_with(
        files: Vec<(PathBuf, String)>,
        transforms: &Transforms,
    ) -> Result<SchemaSet, SchemaError> {
        parse::from_sources(files, transforms)
    }
}

/// Every `.yaml`/`.yml`/`.json` file under `dir` (hidden entries skipped), with paths relative
/// to `dir`. Lens files may live anywhere in the folder, so all candidates are read; only the
/// ones the loader needs are parsed.
fn read_folder(dir: &Path) -> Result<Vec<(PathBuf, String)>, SchemaError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Err(io_error(Path::new(""), "not a folder"));
    }
    walk(dir, Path::new(""), 0, &mut out)?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &Path,
    depth: usize,
    out: &mut Vec<(PathBuf, String)>,
) -> Result<(), SchemaError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = fs::read_dir(root.join(rel)).map_err(|e| io_error(rel, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(rel, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let child = rel.join(&name);
        // `file_type` does not follow links: a linked folder is not entered (no loops), a
        // linked file is read through the link.
        let kind = entry.file_type().map_err(|e| io_error(&child, e))?;
        if kind.is_dir() {
            walk(root, &child, depth + 1, out)?;
            continue;
        }
        let wanted = child
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e));
        if !wanted {
            continue;
        }
        let is_file = kind.is_file()
            || (kind.is_symlink() && fs::metadata(root.join(&child)).is_ok_and(|m| m.is_file()));
        if is_file {
            let text = fs::read_to_string(root.join(&child)).map_err(|e| io_error(&child, e))?;
            out.push((child, text));
        }
    }
    Ok(())
}

fn io_error(file: &Path, reason: impl std::fmt::Display) -> SchemaError {
    SchemaError::new(ErrorKind::Io {
        reason: reason.to_string(),
    })
    .in_file(file)
}
