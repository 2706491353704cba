//! Reading and atomically replacing `index.meta`, the commit record (layout in `format.rs`).
//!
//! Replacement is write to a temporary name, `fdatasync`, rename, directory `fsync`: a crash
//! leaves either the old meta or the new one, never a torn one, so a bad CRC here is real
//! corruption rather than an interrupted write.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::Path;

use super::IndexError;
use super::format::Meta;

pub(super) const META_FILE: &str = "index.meta";
pub(super) const META_TMP: &str = "index.meta.tmp";

/// The meta, or `None` if there is none (a new index, or one never flushed).
pub(super) fn load(dir: &Path) -> Result<Option<Meta>, IndexError> {
    let path = dir.join(META_FILE);
    match fs::read(&path) {
        Ok(b) => {
            Meta::decode(&b).map(Some).ok_or_else(|| IndexError::corrupt(path, 0, "bad meta magic, length or CRC"))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IndexError::io("read", path)(e)),
    }
}

pub(super) fn store(dir: &Path, meta: &Meta) -> Result<(), IndexError> {
    let tmp = dir.join(META_TMP);
    let file = File::create(&tmp).map_err(IndexError::io("create", &tmp))?;
    std::io::Write::write_all(&mut &file, &meta.encode()).map_err(IndexError::io("write", &tmp))?;
    file.sync_data().map_err(IndexError::io("fdatasync", &tmp))?;
    let path = dir.join(META_FILE);
    fs::rename(&tmp, &path).map_err(IndexError::io("rename", &path))?;
    sync_dir(dir)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(IndexError::io("fsync", dir))
}
