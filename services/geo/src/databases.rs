//! The GeoIP databases: memory-mapped MMDB readers, the lookup that turns an address into a
//! [`pb::Location`], and noticing when a file on disk has been replaced.
//!
//! A file is replaced, never rewritten in place: geoipupdate, `make geoip` and the demo generator
//! all write a new file and rename it over the old one. The old mapping stays valid for as long
//! as a lookup holds it (the kernel keeps the unlinked inode alive), so readers swap without
//! pausing lookups. Writing into a mapped file in place would change the bytes under a reader;
//! that is what the `unsafe` in [`open_source`] rests on, and why the documentation says "replace".

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use maxminddb::{Mmap, Reader};
use vigil_proto::v1::{self as pb, LocationKind};

use crate::record::Record;

/// Identity of a file's current content as the file system tells it: a replaced file has a new
/// inode, a rewritten one a new size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let metadata = fs::metadata(path)?;
        Ok(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode: inode(&metadata),
        })
    }
}

#[cfg(unix)]
fn inode(metadata: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(metadata)
}

#[cfg(not(unix))]
fn inode(_metadata: &fs::Metadata) -> u64 {
    0
}

/// What a database file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    City,
    Asn,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::City => "city",
            Role::Asn => "ASN",
        }
    }
}

/// One opened database file.
pub(crate) struct Source {
    path: PathBuf,
    stamp: FileStamp,
    reader: Reader<Mmap>,
    /// 4: an IPv4-only database, which cannot be asked about IPv6 addresses.
    ip_version: u16,
    /// Set after the first failed lookup is logged, so that a damaged file logs once, not per
    /// lookup.
    failure_logged: AtomicBool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("database_type", &self.reader.metadata().database_type)
            .field("ip_version", &self.ip_version)
            .finish_non_exhaustive()
    }
}

/// Maps and validates the database at `path`.
pub(crate) fn open_source(path: &Path, role: Role) -> Result<Source, OpenError> {
    let error = |reason: String| OpenError {
        path: path.to_owned(),
        role,
        reason,
    };
    let stamp = FileStamp::of(path).map_err(|io| error(io.to_string()))?;
    // SAFETY: the file is mapped read-only and, as this module's documentation says, database
    // files are replaced by renaming a new file over them, never modified in place; a replaced
    // file's old inode (and so this mapping) stays valid until the reader is dropped.
    let reader = unsafe { Reader::open_mmap(path) }.map_err(|mmdb| error(mmdb.to_string()))?;
    let metadata = reader.metadata();
    tracing::info!(
        path = %path.display(),
        role = role.as_str(),
        database_type = %metadata.database_type,
        ip_version = metadata.ip_version,
        nodes = metadata.node_count,
        built = %humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(metadata.build_epoch)
        ),
        "GeoIP database opened"
    );
    Ok(Source {
        path: path.to_owned(),
        stamp,
        ip_version: metadata.ip_version,
        reader,
        failure_logged: AtomicBool::new(false),
    })
}

/// A database file that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the GeoIP {} database {}: {reason}", role.as_str(), path.display())]
pub struct OpenError {
    pub path: PathBuf,
    pub role: Role,
    pub reason: String,
}

impl Source {
    /// The record for `address`, if this database has one; a damaged record counts as none (and
    /// is logged once per file).
    fn lookup(&self, address: IpAddr) -> Option<Record<'_>> {
        if address.is_ipv6() && self.ip_version == 4 {
            return None;
        }
        let decoded = self.reader.lookup(address).and_then(|found| found.decode::<Record>());
        match decoded {
            Ok(record) => record,
            Err(error) => {
                if !self.failure_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %self.path.display(), %address, %error,
                        "GeoIP lookup failed; the database may be damaged (logged once per file)");
                }
                None
            }
        }
    }
}

/// The databases in use at one moment. Immutable: a reload builds a new set and swaps it in.
#[derive(Debug, Default)]
pub(crate) struct Databases {
    city: Vec<Arc<Source>>,
    asn: Vec<Arc<Source>>,
}

impl Databases {
    /// Opens every configured file; any that cannot be opened is an error (a configured path that
    /// does not work is a mistake to fix, not something to run without).
    pub fn open(city: &[PathBuf], asn: &[PathBuf]) -> Result<Self, OpenError> {
        let open_all = |paths: &[PathBuf], role| {
            paths
                .iter()
                .map(|path| open_source(path, role).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            city: open_all(city, Role::City)?,
            asn: open_all(asn, Role::Asn)?,
        })
    }

    /// Whether a city database is configured; without one, no public address is located.
    pub fn has_city(&self) -> bool {
        !self.city.is_empty()
    }

    /// Where `address` is. `address` is public (see [`crate::address::is_special`]).
    pub fn locate(&self, address: IpAddr) -> pb::Location {
        let mut location = pb::Location {
            kind: LocationKind::Unknown as i32,
            ..pb::Location::default()
        };
        // The first database that has a record answers (an IPv4 file and an IPv6 file of the same
        // data, typically).
        if let Some(record) = self.city.iter().find_map(|source| source.lookup(address)) {
            if record.fill_place(&mut location) {
                location.kind = LocationKind::Located as i32;
            }
            // Some databases carry the network with the place.
            record.fill_asn(&mut location);
        }
        for source in &self.asn {
            if let Some(record) = source.lookup(address)
                && record.fill_asn(&mut location)
            {
                break;
            }
        }
        location
    }

    /// A set like this one in which every file whose stamp changed on disk is reopened. `None`
    /// when nothing changed. A file that cannot be read or opened right now (half-written,
    /// briefly missing between unlink and rename) keeps its current reader and is tried again
    /// on the next call.
    pub fn refreshed(&self) -> Option<Self> {
        let mut changed = false;
        let mut refresh = |sources: &[Arc<Source>], role| -> Vec<Arc<Source>> {
            sources
                .iter()
                .map(|source| match FileStamp::of(&source.path) {
                    Ok(stamp) if stamp == source.stamp => source.clone(),
                    Ok(_) => match open_source(&source.path, role) {
                        Ok(reopened) => {
                            changed = true;
                            tracing::info!(path = %source.path.display(), "GeoIP database reloaded");
                            Arc::new(reopened)
                        }
                        Err(error) => {
                            tracing::warn!(%error, "keeping the previous GeoIP database until the new one opens");
                            source.clone()
                        }
                    },
                    Err(error) => {
                        tracing::warn!(path = %source.path.display(), %error,
                            "GeoIP database file unreadable; keeping the one in use");
                        source.clone()
                    }
                })
                .collect()
        };
        let city = refresh(&self.city, Role::City);
        let asn = refresh(&self.asn, Role::Asn);
        changed.then_some(Self { city, asn })
    }
}
