//! A simulated storage that can lose power (for tests).
//!
//! Every file keeps its durable bytes apart from the writes made since its last
//! `sync_data`, and every directory its durable entries apart from the entry changes made since
//! its last `sync_dir` (a journal, in order). [`SimStorage::power_cut`] then decides, per file
//! and per directory, how much of what was never synced reached the disk: nothing, all of it,
//! or a random prefix (the last write possibly torn). Directories that lose their own entry
//! vanish with everything in them. After a power cut, handles opened before it fail.
//!
//! [`SimStorage::fail_after`] turns the power off after a given number of mutating operations:
//! from then on every operation fails, as if the machine stopped mid-way. A test runs a workload
//! once to count its operations, then again for every crash point, cutting the power there and
//! checking what recovery finds (the way TigerBeetle and FoundationDB test their storage).

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Storage, StorageFile};

/// How much of the unsynced state survives a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Only what was synced survives.
    LoseAll,
    /// Everything written survives (as after a clean stop of the OS).
    KeepAll,
    /// Per file and per directory, a random prefix of the unsynced operations survives; the
    /// first lost write may survive in part (torn). Seeded: the same seed, the same outcome.
    Random(u64),
}

#[derive(Debug, Clone)]
enum FileOp {
    Append(Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<FileOp>,
    modified_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir(usize),
}

#[derive(Debug, Clone)]
enum DirOp {
    Put(String, Node),
    Remove(String),
    Rename(String, String),
}

#[derive(Debug, Default)]
struct Dir {
    entries: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
    journal: Vec<DirOp>,
}

#[derive(Debug)]
struct State {
    inodes: Vec<Inode>,
    dirs: Vec<Dir>,
    /// Mutating operations performed so far.
    ops: u64,
    /// The power goes off once `ops` reaches this.
    fail_after: Option<u64>,
    /// Bumped by every power cut; handles of an older generation fail.
    generation: u64,
    now_ms: i64,
    /// A full disk: appends fail (nothing written) until it is cleared.
    full: bool,
}

/// The simulated storage; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl Default for SimStorage {
    fn default() -> Self {
        Self::new()
    }
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

/// A tiny deterministic generator (splitmix64), so outcomes replay from the seed.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    fn up_to(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
    }
}

impl State {
    /// Counts a mutating operation, or fails once the power is off.
    fn mutate(&mut self) -> io::Result<()> {
        if self.fail_after.is_some_and(|n| self.ops >= n) {
            return Err(power_lost());
        }
        self.ops += 1;
        Ok(())
    }

    fn powered(&self) -> io::Result<()> {
        if self.fail_after.is_some_and(|n| self.ops >= n) {
            return Err(power_lost());
        }
        Ok(())
    }

    /// The directory holding `path` and the last component's name.
    fn parent_dir(&self, path: &Path) -> io::Result<(usize, String)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
            .to_string_lossy()
            .into_owned();
        let parent = path.parent().unwrap_or(Path::new("/"));
        match self.resolve(parent) {
            Some(Node::Dir(d)) => Ok((d, name)),
            _ => Err(not_found(parent)),
        }
    }

    fn resolve(&self, path: &Path) -> Option<Node> {
        let mut node = Node::Dir(0);
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    let Node::Dir(d) = node else { return None };
                    node = *self.dirs[d].entries.get(&*name.to_string_lossy())?;
                }
                Component::ParentDir | Component::Prefix(_) => return None,
            }
        }
        Some(node)
    }

    fn put(&mut self, dir: usize, name: String, node: Node) {
        self.dirs[dir].entries.insert(name.clone(), node);
        self.dirs[dir].journal.push(DirOp::Put(name, node));
    }

    fn file_op(&mut self, ino: usize, op: FileOp) {
        let now = self.now_ms;
        let inode = &mut self.inodes[ino];
        match &op {
            FileOp::Append(bytes) => inode.data.extend_from_slice(bytes),
            FileOp::SetLen(len) => inode.data.resize(*len as usize, 0),
        }
        inode.pending.push(op);
        inode.modified_ms = now;
    }
}

fn apply_file_op(data: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Append(bytes) => data.extend_from_slice(bytes),
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

fn apply_dir_op(entries: &mut BTreeMap<String, Node>, op: &DirOp) {
    match op {
        DirOp::Put(name, node) => {
            entries.insert(name.clone(), *node);
        }
        DirOp::Remove(name) => {
            entries.remove(name);
        }
        DirOp::Rename(from, to) => {
            if let Some(node) = entries.remove(from) {
                entries.insert(to.clone(), node);
            }
        }
    }
}

impl SimStorage {
    /// An empty storage: just the root directory `/`, durable.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                inodes: Vec::new(),
                dirs: vec![Dir::default()],
                ops: 0,
                fail_after: None,
                generation: 0,
                now_ms: 0,
                full: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mutating operations performed so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Turns the power off once `ops` mutating operations have been performed in total.
    pub fn fail_after(&self, ops: u64) {
        self.lock().fail_after = Some(ops);
    }

    /// Fills the disk (`true`): appends fail with `StorageFull`, writing nothing, until it is
    /// emptied again (`false`). Everything else keeps working.
    pub fn set_full(&self, full: bool) {
        self.lock().full = full;
    }

    /// Sets the clock used for modification times.
    pub fn set_now_ms(&self, now_ms: i64) {
        self.lock().now_ms = now_ms;
    }

    /// Cuts the power: unsynced state survives as `mode` says, handles opened before become
    /// unusable, and the power is back on.
    pub fn power_cut(&self, mode: CutMode) {
        let mut state = self.lock();
        let mut rng = Rng(match mode {
            CutMode::Random(seed) => seed,
            _ => 0,
        });
        for inode in &mut state.inodes {
            let keep = match mode {
                CutMode::LoseAll => 0,
                CutMode::KeepAll => inode.pending.len(),
                CutMode::Random(_) => rng.up_to(inode.pending.len()),
            };
            let mut durable = std::mem::take(&mut inode.durable);
            for op in &inode.pending[..keep] {
                apply_file_op(&mut durable, op);
            }
            if let (CutMode::Random(_), Some(FileOp::Append(bytes))) = (mode, inode.pending.get(keep)) {
                // The first lost write may have reached the disk in part: a prefix of it, or
                // (the file's new length persisted before its data) its length with the rest
                // left as zeros.
                let torn = rng.up_to(bytes.len());
                durable.extend_from_slice(&bytes[..torn]);
                if rng.next().is_multiple_of(2) {
                    durable.resize(durable.len() + bytes.len() - torn, 0);
                }
            }
            inode.data = durable.clone();
            inode.durable = durable;
            inode.pending.clear();
        }
        for dir in &mut state.dirs {
            let keep = match mode {
                CutMode::LoseAll => 0,
                CutMode::KeepAll => dir.journal.len(),
                CutMode::Random(_) => rng.up_to(dir.journal.len()),
            };
            let mut durable = std::mem::take(&mut dir.durable);
            for op in &dir.journal[..keep] {
                apply_dir_op(&mut durable, op);
            }
            dir.entries = durable.clone();
            dir.durable = durable;
            dir.journal.clear();
        }
        state.generation += 1;
        state.fail_after = None;
    }

    /// The current content of a file (for tests that tamper with or inspect files).
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read(path)
    }

    /// Replaces a file's content, durably (for tests that plant corrupt files).
    pub fn plant(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let file = self.open(path, true, true)?;
        file.append(&[bytes])?;
        file.sync_data()?;
        self.sync_dir(super::parent_of(path))
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: usize,
    generation: u64,
}

impl SimFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation != self.generation {
            return Err(io::Error::other("file handle from before a power cut"));
        }
        Ok(state)
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        let state = self.lock()?;
        state.powered()?;
        Ok(state.inodes[self.ino].data.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        let state = self.lock()?;
        state.powered()?;
        let data = &state.inodes[self.ino].data;
        let start = usize::try_from(position).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let end = start.checked_add(buf.len()).filter(|&e| e <= data.len());
        let Some(end) = end else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn append(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut state = self.lock()?;
        state.mutate()?;
        if state.full {
            return Err(io::ErrorKind::StorageFull.into());
        }
        let bytes = parts.concat();
        state.file_op(self.ino, FileOp::Append(bytes));
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.lock()?;
        state.mutate()?;
        state.file_op(self.ino, FileOp::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.lock()?;
        state.mutate()?;
        let inode = &mut state.inodes[self.ino];
        inode.durable = inode.data.clone();
        inode.pending.clear();
        Ok(())
    }

    fn modified_ms(&self) -> io::Result<i64> {
        Ok(self.lock()?.inodes[self.ino].modified_ms)
    }

    fn os_file(&self) -> Option<Arc<std::fs::File>> {
        None
    }
}

impl Storage for SimStorage {
    fn open(&self, path: &Path, create: bool, truncate: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.lock();
        state.powered()?;
        let (dir, name) = state.parent_dir(path)?;
        let ino = match state.dirs[dir].entries.get(&name) {
            Some(Node::File(ino)) => *ino,
            Some(Node::Dir(_)) => return Err(io::Error::other("is a directory")),
            None if create => {
                state.mutate()?;
                let ino = state.inodes.len();
                let now = state.now_ms;
                state.inodes.push(Inode {
                    modified_ms: now,
                    ..Inode::default()
                });
                state.put(dir, name, Node::File(ino));
                ino
            }
            None => return Err(not_found(path)),
        };
        if truncate && !state.inodes[ino].data.is_empty() {
            state.mutate()?;
            state.file_op(ino, FileOp::SetLen(0));
        }
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: state.generation,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock();
        state.powered()?;
        match state.resolve(path) {
            Some(Node::File(ino)) => Ok(state.inodes[ino].data.clone()),
            Some(Node::Dir(_)) => Err(io::Error::other("is a directory")),
            None => Err(not_found(path)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.powered()?;
        let (dir, from_name) = state.parent_dir(from)?;
        let (to_dir, to_name) = state.parent_dir(to)?;
        if dir != to_dir {
            return Err(io::Error::other(
                "the simulated storage renames within a directory only",
            ));
        }
        let node = *state.dirs[dir].entries.get(&from_name).ok_or_else(|| not_found(from))?;
        state.mutate()?;
        let d = &mut state.dirs[dir];
        d.entries.remove(&from_name);
        d.entries.insert(to_name.clone(), node);
        d.journal.push(DirOp::Rename(from_name, to_name));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.powered()?;
        let (dir, name) = state.parent_dir(path)?;
        match state.dirs[dir].entries.get(&name) {
            Some(Node::File(_)) => {}
            Some(Node::Dir(_)) => return Err(io::Error::other("is a directory")),
            None => return Err(not_found(path)),
        }
        state.mutate()?;
        let d = &mut state.dirs[dir];
        d.entries.remove(&name);
        d.journal.push(DirOp::Remove(name));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.powered()?;
        let mut dir = 0;
        for c in path.components() {
            let Component::Normal(name) = c else { continue };
            let name = name.to_string_lossy().into_owned();
            dir = match state.dirs[dir].entries.get(&name) {
                Some(Node::Dir(d)) => *d,
                Some(Node::File(_)) => return Err(io::Error::other("a file is in the way")),
                None => {
                    state.mutate()?;
                    let d = state.dirs.len();
                    state.dirs.push(Dir::default());
                    state.put(dir, name, Node::Dir(d));
                    d
                }
            };
        }
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.powered()?;
        let (dir, name) = state.parent_dir(path)?;
        match state.dirs[dir].entries.get(&name) {
            Some(Node::Dir(_)) => {}
            _ => return Err(not_found(path)),
        }
        // Removing the entry is enough: a lost removal brings the directory back whole.
        state.mutate()?;
        let d = &mut state.dirs[dir];
        d.entries.remove(&name);
        d.journal.push(DirOp::Remove(name));
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        state.powered()?;
        match state.resolve(path) {
            Some(Node::Dir(d)) => Ok(state.dirs[d].entries.keys().cloned().collect()),
            _ => Err(not_found(path)),
        }
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.powered()?;
        let Some(Node::Dir(d)) = state.resolve(path) else {
            return Err(not_found(path));
        };
        state.mutate()?;
        let dir = &mut state.dirs[d];
        dir.durable = dir.entries.clone();
        dir.journal.clear();
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock().resolve(path).is_some()
    }

    fn is_dir(&self, path: &Path) -> bool {
        matches!(self.lock().resolve(path), Some(Node::Dir(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_bytes_and_entries_are_lost_synced_ones_kept() {
        let s = SimStorage::new();
        s.create_dir_all(Path::new("/d")).unwrap();
        s.sync_dir(Path::new("/")).unwrap();
        let f = s.open(Path::new("/d/a"), true, false).unwrap();
        f.append(&[b"one"]).unwrap();
        f.sync_data().unwrap();
        f.append(&[b"two"]).unwrap();
        // The file's entry was never synced: it is gone after a cut.
        s.power_cut(CutMode::LoseAll);
        assert!(!s.exists(Path::new("/d/a")));
        assert!(f.len().is_err(), "handles from before the cut are dead");

        let f = s.open(Path::new("/d/a"), true, false).unwrap();
        f.append(&[b"one"]).unwrap();
        f.sync_data().unwrap();
        s.sync_dir(Path::new("/d")).unwrap();
        f.append(&[b"two"]).unwrap();
        s.power_cut(CutMode::LoseAll);
        assert_eq!(s.read(Path::new("/d/a")).unwrap(), b"one");
    }

    #[test]
    fn renames_are_atomic_and_ordered() {
        let s = SimStorage::new();
        s.create_dir_all(Path::new("/d")).unwrap();
        s.sync_dir(Path::new("/")).unwrap();
        s.plant(Path::new("/d/cp"), b"old").unwrap();
        for seed in 0..50 {
            let f = s.open(Path::new("/d/cp.tmp"), true, true).unwrap();
            f.append(&[b"new"]).unwrap();
            f.sync_data().unwrap();
            s.rename(Path::new("/d/cp.tmp"), Path::new("/d/cp")).unwrap();
            s.power_cut(CutMode::Random(seed));
            let now = s.read(Path::new("/d/cp")).unwrap();
            assert!(now == b"old" || now == b"new", "{now:?}");
            s.plant(Path::new("/d/cp"), b"old").unwrap();
        }
    }

    #[test]
    fn the_power_goes_off_after_n_operations() {
        let s = SimStorage::new();
        s.fail_after(2);
        s.create_dir_all(Path::new("/d")).unwrap();
        s.sync_dir(Path::new("/")).unwrap();
        assert!(s.open(Path::new("/d/x"), true, false).is_err());
        assert_eq!(s.ops(), 2);
        s.power_cut(CutMode::KeepAll);
        assert!(s.is_dir(Path::new("/d")));
    }
}
