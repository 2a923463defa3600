//! The file operations a log needs, behind a narrow interface, so that tests can run the real
//! log code over a storage that loses what was never synced ([`sim`], a simulated power cut).
//!
//! The contract is POSIX's, stated strictly (as a journaling file system under a power cut
//! may behave): bytes written to a file survive a power cut only once [`StorageFile::sync_data`]
//! returned; a created, renamed or removed directory entry survives only once
//! [`Storage::sync_dir`] of its directory returned. Until then either outcome is possible.
//! Operations on one directory reach the disk in the order they were made (a journal), and a
//! rename within a directory is atomic.
//!
//! [`OsStorage`] is the real file system. Every other module of this crate does its file I/O
//! through these traits.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

pub mod fd_cache;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

/// Directory-level operations. Paths are absolute or relative to the process, as given.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `path` for positional reads and appends. With `create`, a missing file is created
    /// (an unsynced directory entry); with `truncate`, an existing file is emptied.
    fn open(&self, path: &Path, create: bool, truncate: bool) -> io::Result<Arc<dyn StorageFile>>;

    /// The whole content of a small file (checkpoints). `NotFound` when absent.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Renames `from` to `to` in the same directory, replacing `to` (atomic).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file's directory entry.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Creates `path` and any missing parents (unsynced entries in their parents).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Removes a directory and everything under it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    /// The names of the entries of directory `path`, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Makes every entry change of directory `path` so far durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;

    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
}

/// One open file.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// True when empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `buf` from `position`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;

    /// Appends `parts` at the end of the file, in order. On error some prefix of the bytes
    /// may have been written: the caller cuts the file back with [`StorageFile::set_len`].
    fn append(&self, parts: &[&[u8]]) -> io::Result<()>;

    /// Truncates (or extends with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes the file's content durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;

    /// Last modification time, in ms since the epoch.
    fn modified_ms(&self) -> io::Result<i64>;

    /// The OS file, when there is one (for `sendfile`); holding it keeps its descriptor open.
    fn os_file(&self) -> Option<Arc<File>>;
}

/// Writes every byte of `parts` at the end of `file` (opened for appending), in order.
pub(crate) fn append_all(file: &File, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut slices = &mut slices[..];
    let mut written = 0;
    let mut file = file;
    while written < total {
        let n = file.write_vectored(slices)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
        io::IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

impl OsStorage {
    /// A shared handle, as logs take it.
    pub fn shared() -> Arc<dyn Storage> {
        Arc::new(OsStorage)
    }
}

#[derive(Debug)]
struct OsFile(Arc<File>);

impl StorageFile for OsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, position)
    }

    fn append(&self, parts: &[&[u8]]) -> io::Result<()> {
        append_all(&self.0, parts)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn modified_ms(&self) -> io::Result<i64> {
        let modified = self.0.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    fn os_file(&self) -> Option<Arc<File>> {
        Some(Arc::clone(&self.0))
    }
}

impl Storage for OsStorage {
    fn open(&self, path: &Path, create: bool, truncate: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).append(true).create(create).open(path)?;
        if truncate {
            file.set_len(0)?;
        }
        Ok(Arc::new(OsFile(Arc::new(file))))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// Replaces a small file so that a power cut leaves the old or the new content, never a torn
/// or empty one: write a temporary file, sync it, rename it over `path`, sync the directory.
pub fn write_atomic(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let file = storage.open(&tmp, true, true)?;
    file.append(&[bytes])?;
    file.sync_data()?;
    drop(file);
    storage.rename(&tmp, path)?;
    storage.sync_dir(parent_of(path))
}

/// Creates `dir` and makes its entry durable in its parent. The parent must exist durably
/// already (the data directory is created this way first, then partition directories in it).
pub fn create_dir_durable(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    if storage.is_dir(dir) {
        return Ok(());
    }
    storage.create_dir_all(dir)?;
    storage.sync_dir(parent_of(dir))
}

/// The directory holding `path` ("." for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
