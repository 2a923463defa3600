//! The real file system with a bounded number of open files: file descriptors are a cache,
//! not one per file. A node with 100,000 partitions has about 400,000 segment and index
//! files; keeping each open (as Kafka does) needs an open-file limit few machines have, and
//! running out mid-way leaves a node that cannot even start.
//!
//! A [`CachedFile`] remembers its path and opens it on first use; once more than
//! `open_files_max` are open, the least recently used ones (the CLOCK approximation: a
//! "referenced" bit per file, cleared by a sweeping hand) are closed, to be reopened by their
//! next use. Users of a file hold an `Arc<File>` only for one operation (or one `sendfile`),
//! so closing a file never pulls it from under a reader: its descriptor goes when the last
//! user is done.
//!
//! Names that change under a file: a file renamed over (compaction's swap) or removed while
//! someone still holds it is pinned open first, so its holders keep reading the old inode as
//! they would with a plain descriptor; a renamed file's handles follow it to the new name.
//!
//! Durability: a write-back error of an evicted file's pages is still reported to the next
//! `sync_data`, through a new descriptor (Linux ≥ 4.16 reports an unseen error to any fd).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{OsStorage, Storage, StorageFile};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shared cache state: which handles have a descriptor, and every live handle by path.
#[derive(Debug, Default)]
struct State {
    /// Handles holding a descriptor, in CLOCK order (dead entries are skipped lazily).
    ring: VecDeque<Weak<Handle>>,
    open: usize,
    by_path: HashMap<PathBuf, Vec<Weak<Handle>>>,
}

#[derive(Debug)]
struct Cache {
    open_files_max: usize,
    state: Mutex<State>,
    /// Files opened (first opens and reopens after eviction), for tests and benchmarks.
    opens: AtomicU64,
}

struct Handle {
    path: Mutex<PathBuf>,
    file: Mutex<Option<Arc<File>>>,
    referenced: AtomicBool,
    /// Never evicted: renamed over or removed while held (see the module docs).
    pinned: AtomicBool,
    cache: Arc<Cache>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CachedFile({})", lock(&self.path).display())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let had_file = self.file.get_mut().unwrap_or_else(|p| p.into_inner()).take().is_some();
        let path = self.path.get_mut().unwrap_or_else(|p| p.into_inner()).clone();
        let mut state = lock(&self.cache.state);
        if had_file {
            state.open = state.open.saturating_sub(1);
        }
        if let Some(list) = state.by_path.get_mut(&path) {
            list.retain(|w| w.strong_count() > 0);
            if list.is_empty() {
                state.by_path.remove(&path);
            }
        }
    }
}

fn open_os(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new().read(true).append(true).create(create).open(path)
}

impl Handle {
    /// The descriptor, opening the file if it was closed.
    fn file(self: &Arc<Self>) -> io::Result<Arc<File>> {
        self.referenced.store(true, Ordering::Relaxed);
        if let Some(f) = lock(&self.file).as_ref() {
            return Ok(Arc::clone(f));
        }
        let path = lock(&self.path).clone();
        let opened = Arc::new(open_os(&path, false)?);
        self.cache.opens.fetch_add(1, Ordering::Relaxed);
        {
            let mut slot = lock(&self.file);
            if let Some(f) = slot.as_ref() {
                return Ok(Arc::clone(f)); // another thread won the race
            }
            *slot = Some(Arc::clone(&opened));
        }
        self.cache.opened(self);
        Ok(opened)
    }

    /// Keeps the descriptor for good (opening it if need be).
    fn pin(self: &Arc<Self>) {
        // Pinned first, so the open below cannot evict it right away.
        self.pinned.store(true, Ordering::Relaxed);
        if self.file().is_err() {
            self.pinned.store(false, Ordering::Relaxed);
        }
    }
}

impl Cache {
    /// Records that `handle` now holds a descriptor and closes the coldest ones over the bound.
    fn opened(&self, handle: &Arc<Handle>) {
        let mut state = lock(&self.state);
        state.ring.push_back(Arc::downgrade(handle));
        state.open += 1;
        // Two sweeps clear every referenced bit once; stop there even if all are pinned.
        let mut budget = state.ring.len() * 2;
        while state.open > self.open_files_max && budget > 0 {
            budget -= 1;
            let Some(weak) = state.ring.pop_front() else { break };
            let Some(h) = weak.upgrade() else { continue };
            if h.pinned.load(Ordering::Relaxed) || h.referenced.swap(false, Ordering::Relaxed) {
                state.ring.push_back(weak);
                continue;
            }
            if lock(&h.file).take().is_some() {
                state.open -= 1;
            }
        }
    }

    /// Every live handle of `path`.
    fn handles(&self, path: &Path) -> Vec<Arc<Handle>> {
        let state = lock(&self.state);
        state
            .by_path
            .get(path)
            .map(|l| l.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }
}

/// A file of a [`CachedStorage`]: opened on use, closed when cold.
#[derive(Debug)]
pub struct CachedFile(Arc<Handle>);

impl StorageFile for CachedFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.file()?.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.0.file()?.read_exact_at(buf, position)
    }

    fn append(&self, parts: &[&[u8]]) -> io::Result<()> {
        super::append_all(&*self.0.file()?, parts)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.file()?.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.file()?.sync_data()
    }

    fn modified_ms(&self) -> io::Result<i64> {
        let modified = self.0.file()?.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    fn os_file(&self) -> Option<Arc<File>> {
        self.0.file().ok()
    }
}

/// [`OsStorage`] with at most `open_files_max` files open (see the module docs).
#[derive(Debug, Clone)]
pub struct CachedStorage {
    cache: Arc<Cache>,
}

impl CachedStorage {
    /// A storage keeping at most `open_files_max` (at least 1) files open at a time.
    pub fn new(open_files_max: usize) -> Self {
        Self {
            cache: Arc::new(Cache {
                open_files_max: open_files_max.max(1),
                state: Mutex::new(State::default()),
                opens: AtomicU64::new(0),
            }),
        }
    }

    /// Files open now (descriptors the cache holds).
    pub fn open_files(&self) -> usize {
        lock(&self.cache.state).open
    }

    /// Files opened so far, reopens included.
    pub fn opens(&self) -> u64 {
        self.cache.opens.load(Ordering::Relaxed)
    }
}

impl Storage for CachedStorage {
    fn open(&self, path: &Path, create: bool, truncate: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = open_os(path, create)?;
        if truncate {
            file.set_len(0)?;
        }
        self.cache.opens.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle {
            path: Mutex::new(path.to_path_buf()),
            file: Mutex::new(Some(Arc::new(file))),
            referenced: AtomicBool::new(true),
            pinned: AtomicBool::new(false),
            cache: Arc::clone(&self.cache),
        });
        lock(&self.cache.state)
            .by_path
            .entry(path.to_path_buf())
            .or_default()
            .push(Arc::downgrade(&handle));
        self.cache.opened(&handle);
        Ok(Arc::new(CachedFile(handle)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsStorage.read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        // Whoever holds the file being replaced keeps reading it, not its replacement.
        for h in self.cache.handles(to) {
            h.pin();
        }
        OsStorage.rename(from, to)?;
        let moved = self.cache.handles(from);
        let mut state = lock(&self.cache.state);
        state.by_path.remove(from);
        for h in moved {
            *lock(&h.path) = to.to_path_buf();
            state
                .by_path
                .entry(to.to_path_buf())
                .or_default()
                .push(Arc::downgrade(&h));
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        // Holders of a removed file keep it, as with a plain descriptor.
        for h in self.cache.handles(path) {
            h.pin();
        }
        OsStorage.remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsStorage.create_dir_all(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let held: Vec<Arc<Handle>> = {
            let state = lock(&self.cache.state);
            state
                .by_path
                .iter()
                .filter(|(p, _)| p.starts_with(path))
                .flat_map(|(_, l)| l.iter().filter_map(Weak::upgrade))
                .collect()
        };
        for h in held {
            h.pin();
        }
        OsStorage.remove_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        OsStorage.list_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        OsStorage.sync_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        OsStorage.exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        OsStorage.is_dir(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(f: &Arc<dyn StorageFile>) -> Vec<u8> {
        let mut buf = vec![0; f.len().unwrap() as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn many_files_through_few_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let s = CachedStorage::new(3);
        let files: Vec<_> = (0..20)
            .map(|i| s.open(&dir.path().join(format!("{i}.log")), true, true).unwrap())
            .collect();
        for round in 0..3u8 {
            for (i, f) in files.iter().enumerate() {
                f.append(&[&[i as u8, round]]).unwrap();
                assert!(s.open_files() <= 3, "{} open", s.open_files());
            }
        }
        for (i, f) in files.iter().enumerate() {
            assert_eq!(read_all(f), vec![i as u8, 0, i as u8, 1, i as u8, 2]);
        }
        assert!(s.opens() > 20, "files were closed and reopened");
        files[0].set_len(2).unwrap();
        files[0].sync_data().unwrap();
        assert_eq!(read_all(&files[0]), vec![0, 0]);
        drop(files);
        assert_eq!(s.open_files(), 0);
    }

    #[test]
    fn a_file_renamed_over_or_removed_stays_readable_by_its_holders() {
        let dir = tempfile::tempdir().unwrap();
        let s = CachedStorage::new(1);
        let (live, cleaned) = (dir.path().join("0.log"), dir.path().join("0.log.cleaned"));
        let old = s.open(&live, true, true).unwrap();
        old.append(&[b"old"]).unwrap();
        let new = s.open(&cleaned, true, true).unwrap();
        new.append(&[b"new"]).unwrap();
        s.rename(&cleaned, &live).unwrap();
        // Churn the one-slot cache so both would have been evicted.
        let other = s.open(&dir.path().join("x"), true, true).unwrap();
        other.append(&[b"x"]).unwrap();
        assert_eq!(read_all(&old), b"old", "the replaced file keeps its old content");
        assert_eq!(read_all(&new), b"new", "the renamed handle follows its file");
        new.append(&[b"er"]).unwrap();
        assert_eq!(std::fs::read(&live).unwrap(), b"newer");

        let gone = s.open(&dir.path().join("gone"), true, true).unwrap();
        gone.append(&[b"bye"]).unwrap();
        s.remove_file(&dir.path().join("gone")).unwrap();
        other.append(&[b"y"]).unwrap();
        assert_eq!(read_all(&gone), b"bye");
    }
}
