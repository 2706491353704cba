//! [`IndexConfig`]: the geometry of new index files.

use super::IndexError;
use super::format::Geometry;

/// How big the index files are. Applies to files created from now on: an existing file keeps
/// the geometry written in its header, so changing this never requires a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    /// Entries (one per message id, one per distinct key) before a file rolls over.
    /// Default 4 Mi: 160 MiB of entries, about 1.5 M messages with an id and one or two keys.
    /// Retention deletes whole files, so this is also the granularity at which it frees disk.
    pub entries_per_file: u32,
    /// Hash slots per file. Default 1 Mi (4 MiB, held twice in memory for the file being
    /// written): a chain averages `entries_per_file / slots_per_file` = 4 entries, and a lookup
    /// walks one chain per file.
    pub slots_per_file: u32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig { entries_per_file: 4 << 20, slots_per_file: 1 << 20 }
    }
}

impl IndexConfig {
    /// Entry numbers are u32 with 0 meaning "none", and the fixed part of a file must be
    /// mappable; these bounds keep both true.
    pub fn validate(&self) -> Result<(), IndexError> {
        if self.entries_per_file < 2 || self.entries_per_file > 1 << 30 {
            return Err(IndexError::Config("entries_per_file must be in [2, 2^30]"));
        }
        if self.slots_per_file == 0 || self.slots_per_file > 1 << 28 {
            return Err(IndexError::Config("slots_per_file must be in [1, 2^28]"));
        }
        Ok(())
    }

    pub(super) fn geometry(&self) -> Geometry {
        Geometry { slots: self.slots_per_file, capacity: self.entries_per_file }
    }
}
