//! The snapshot file: `HFSN`, the metadata's length (u32, little endian), the metadata
//! (codec), then the table's canonical encoding. The whole file is what openraft moves to a
//! follower, in chunks, so a snapshot is never held in memory as one buffer; it is written
//! beside its final name, synced, then renamed over it.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::raft::types::SnapshotMeta;
use crate::state::StickTable;

const MAGIC: &[u8; 4] = b"HFSN";

/// The snapshot file of a data directory and the temporary names beside it.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    path: PathBuf,
}

/// A snapshot read back: its metadata and table.
pub struct Loaded {
    /// The snapshot's metadata.
    pub meta: SnapshotMeta,
    /// The table it holds.
    pub table: StickTable,
}

/// The format written before files were streamed (one codec value), still read.
#[derive(Deserialize, Serialize)]
struct Legacy {
    meta: SnapshotMeta,
    table: Vec<u8>,
}

impl SnapshotFile {
    /// The snapshot of data directory `dir`.
    pub fn in_dir(dir: &Path) -> SnapshotFile {
        SnapshotFile {
            path: dir.join("snapshot.bin"),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a snapshot being received from the leader is written.
    pub fn receiving(&self) -> PathBuf {
        self.path.with_extension("recv")
    }

    /// Encodes `table` with `meta` into the file: written beside it, synced, renamed over
    /// it, directory synced. Returns the bytes written. Runs as long as the table is large:
    /// call it off the async runtime.
    pub fn write(&self, meta: &SnapshotMeta, table: &StickTable) -> std::io::Result<u64> {
        let tmp = self.path.with_extension("tmp");
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let meta_bytes = codec::encode(meta).map_err(std::io::Error::other)?;
        out.write_all(MAGIC)?;
        out.write_all(
            &u32::try_from(meta_bytes.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        )?;
        out.write_all(&meta_bytes)?;
        table.encode_snapshot_into(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        drop(file);
        self.commit(&tmp)?;
        Ok(bytes)
    }

    /// Writes `bytes`, a whole snapshot file received from the leader, as the file.
    pub fn write_bytes(&self, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        self.commit(&tmp)
    }

    /// Renames a complete, synced snapshot at `from` over the file and syncs the directory.
    fn commit(&self, from: &Path) -> std::io::Result<()> {
        std::fs::rename(from, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Reads the snapshot at `path` (the file itself, or one received); `Ok(None)` if
    /// there is none.
    pub fn read(path: &Path) -> Result<Option<Loaded>, ReadError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => f.read_to_end(&mut bytes).map_err(ReadError::Io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReadError::Io(e)),
        };
        Self::parse(&bytes).map(Some)
    }

    /// Reads a whole snapshot file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Loaded, ReadError> {
        let (meta, table) = match bytes.strip_prefix(MAGIC) {
            Some(rest) => split(rest)?,
            None => {
                let legacy: Legacy =
                    codec::decode(bytes).map_err(|e| ReadError::Corrupt(e.to_string()))?;
                (legacy.meta, decode(&legacy.table)?)
            }
        };
        Ok(Loaded { meta, table })
    }
}

fn split(rest: &[u8]) -> Result<(SnapshotMeta, StickTable), ReadError> {
    let corrupt = |what: &str| ReadError::Corrupt(what.to_string());
    let (len, rest) = rest
        .split_at_checked(4)
        .ok_or_else(|| corrupt("truncated header"))?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (meta, table) = rest
        .split_at_checked(len)
        .ok_or_else(|| corrupt("truncated metadata"))?;
    let meta = codec::decode(meta).map_err(|e| ReadError::Corrupt(e.to_string()))?;
    Ok((meta, decode(table)?))
}

fn decode(table: &[u8]) -> Result<StickTable, ReadError> {
    StickTable::decode_snapshot(table).map_err(|e| ReadError::Corrupt(e.to_string()))
}

/// Why a snapshot file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{0}")]
    Io(std::io::Error),
    /// The file is not a valid snapshot.
    #[error("{0}")]
    Corrupt(String),
}
