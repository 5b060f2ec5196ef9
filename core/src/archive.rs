//! The archive store: where recordings' audio and documents live.
//!
//! Keys are relative paths such as `<recording-id>/tracks/<track-id>.opus`. The store is a
//! trait so that the same code runs on local disk now and on object storage later; the
//! in-memory twin serves tests and benchmarks. One test suite runs against both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Error, Result};

/// A file being appended to (a live track).
pub trait AppendFile: Send + Debug {
    /// Appends `data` at the end.
    fn append(&mut self, data: &[u8]) -> Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> Result<()>;
}

/// A file opened for reading: read and seek in pieces, so that serving even a long mix never
/// holds more of it in memory than the piece being sent.
pub trait ReadFile: Read + Seek + Send + Debug {}

impl<T: Read + Seek + Send + Debug> ReadFile for T {}

/// An archive file opened for reading, with its size at that moment. Reads see the file as it
/// was opened even if it is replaced meanwhile (`put_atomic` renames a new file into place).
#[derive(Debug)]
pub struct OpenFile {
    pub size: u64,
    pub reader: Box<dyn ReadFile>,
}

/// Storage for archives. All methods take keys checked by [`check_key`].
pub trait ArchiveStore: Send + Sync + Debug {
    /// Replaces `key` with `data` atomically: readers see the old or the new bytes, never a mix,
    /// and after a crash the file is one or the other.
    fn put_atomic(&self, key: &str, data: &[u8]) -> Result<()>;
    /// The whole of `key`.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Opens `key` for reading in pieces (serving files: never the whole of one in memory).
    fn open_read(&self, key: &str) -> Result<OpenFile>;
    /// Size of `key` in bytes.
    fn size(&self, key: &str) -> Result<u64>;
    /// Whether `key` exists.
    fn exists(&self, key: &str) -> Result<bool>;
    /// Opens `key` for appending, creating it if needed.
    fn open_append(&self, key: &str) -> Result<Box<dyn AppendFile>>;
    /// Cuts `key` to `len` bytes and overwrites `patch` at `patch_offset` (crash recovery).
    fn truncate_and_patch(
        &self,
        key: &str,
        len: u64,
        patch_offset: u64,
        patch: &[u8],
    ) -> Result<()>;
    /// Every key that starts with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Removes one key; a missing key is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Removes every key under `prefix/`.
    fn delete_dir(&self, prefix: &str) -> Result<()>;
    /// A path on local disk for `key`, when the store has one (for serving files and tools).
    fn local_path(&self, key: &str) -> Option<PathBuf>;
    /// Takes the lock named `key` (an empty key, made if missing) without waiting: `None` while
    /// another holder, in this process or another, has it. It is held until the [`StoreLock`]
    /// is dropped, which removes the key, or until the holder's process ends: on disk it is an
    /// advisory lock the OS keeps, so a killed holder never keeps it.
    fn try_lock(&self, key: &str) -> Result<Option<StoreLock>>;
}

/// A lock taken with [`ArchiveStore::try_lock`]. Dropping it removes its key, then lets go.
#[derive(Debug)]
pub struct StoreLock {
    /// The store's guard, which does the work when dropped.
    _held: Box<dyn Debug + Send + Sync>,
}

/// Rejects keys that could escape the store: absolute paths, `..`, odd characters.
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && !key.starts_with('/')
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid archive key {key:?}")))
    }
}

/// Archives on local disk under one root directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| Error::io("create", &root, e))?;
        Ok(LocalStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn parent_dir(path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) {
    // Making the rename durable needs the directory synced; where the platform refuses
    // (some file systems do), the data itself is still synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl ArchiveStore for LocalStore {
    fn put_atomic(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        Self::parent_dir(&path)?;
        let tmp = path.with_extension(format!(
            "{}.tmp-{}",
            path.extension().and_then(|e| e.to_str()).unwrap_or(""),
            std::process::id()
        ));
        let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent);
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        std::fs::read(&path).map_err(|e| not_found_or_io(key, "read", &path, e))
    }

    fn open_read(&self, key: &str) -> Result<OpenFile> {
        let path = self.path(key)?;
        let f = File::open(&path).map_err(|e| not_found_or_io(key, "open", &path, e))?;
        let meta = f.metadata().map_err(|e| Error::io("stat", &path, e))?;
        if !meta.is_file() {
            return Err(Error::NotFound(format!("archive file {key}")));
        }
        Ok(OpenFile {
            size: meta.len(),
            reader: Box::new(f),
        })
    }

    fn size(&self, key: &str) -> Result<u64> {
        let path = self.path(key)?;
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| not_found_or_io(key, "stat", &path, e))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.path(key)?.is_file())
    }

    fn open_append(&self, key: &str) -> Result<Box<dyn AppendFile>> {
        let path = self.path(key)?;
        Self::parent_dir(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent);
        }
        Ok(Box::new(LocalAppend { file, path }))
    }

    fn truncate_and_patch(
        &self,
        key: &str,
        len: u64,
        patch_offset: u64,
        patch: &[u8],
    ) -> Result<()> {
        let path = self.path(key)?;
        let mut f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| not_found_or_io(key, "open", &path, e))?;
        f.set_len(len)
            .map_err(|e| Error::io("truncate", &path, e))?;
        if !patch.is_empty() {
            f.seek(SeekFrom::Start(patch_offset))
                .map_err(|e| Error::io("seek", &path, e))?;
            f.write_all(patch)
                .map_err(|e| Error::io("write", &path, e))?;
        }
        f.sync_all().map_err(|e| Error::io("sync", &path, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(prefix.trim_end_matches('/'))
        };
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(Error::io("list", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(prefix) && !key.contains(".tmp-") {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", &path, e)),
        }
    }

    fn delete_dir(&self, prefix: &str) -> Result<()> {
        let path = self.path(prefix.trim_end_matches('/'))?;
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", &path, e)),
        }
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }

    fn try_lock(&self, key: &str) -> Result<Option<StoreLock>> {
        let path = self.path(key)?;
        Self::parent_dir(&path)?;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
            // A holder removes the file before it lets go. If that happened between our open
            // and our lock, we hold a file nobody else can find: open the name again.
            if is_same_file(&file, &path) {
                return Ok(Some(StoreLock {
                    _held: Box::new(LocalLock { file, path }),
                }));
            }
        }
    }
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `path` still names the open `file` (elsewhere an open file cannot be removed).
#[cfg(not(unix))]
fn is_same_file(_file: &File, path: &Path) -> bool {
    path.is_file()
}

/// A held lock file; the OS releases the lock when `file` is closed or the process ends.
#[derive(Debug)]
struct LocalLock {
    file: File,
    path: PathBuf,
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        // Removed while still locked, so nobody can take a lock on a name about to vanish.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn not_found_or_io(key: &str, op: &'static str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound(format!("archive file {key}"))
    } else {
        Error::io(op, path, e)
    }
}

#[derive(Debug)]
struct LocalAppend {
    file: File,
    path: PathBuf,
}

impl AppendFile for LocalAppend {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| Error::io("append", &self.path, e))
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))
    }
}

type Files = Arc<Mutex<BTreeMap<String, Arc<Mutex<Vec<u8>>>>>>;

/// Archives in memory, for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    files: Files,
    /// Keys locked with `try_lock`.
    locks: Arc<Mutex<BTreeSet<String>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Mutex<Vec<u8>>>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self, key: &str) -> Result<Arc<Mutex<Vec<u8>>>> {
        check_key(key)?;
        self.files()
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("archive file {key}")))
    }
}

fn lock(v: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    v.lock().unwrap_or_else(|p| p.into_inner())
}

impl ArchiveStore for MemoryStore {
    fn put_atomic(&self, key: &str, data: &[u8]) -> Result<()> {
        check_key(key)?;
        self.files()
            .insert(key.to_string(), Arc::new(Mutex::new(data.to_vec())));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let f = self.file(key)?;
        let data = lock(&f).clone();
        Ok(data)
    }

    fn open_read(&self, key: &str) -> Result<OpenFile> {
        let file = self.file(key)?;
        let size = lock(&file).len() as u64;
        Ok(OpenFile {
            size,
            reader: Box::new(MemoryRead {
                file,
                pos: 0,
                end: size,
            }),
        })
    }

    fn size(&self, key: &str) -> Result<u64> {
        let f = self.file(key)?;
        let len = lock(&f).len() as u64;
        Ok(len)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        Ok(self.files().contains_key(key))
    }

    fn open_append(&self, key: &str) -> Result<Box<dyn AppendFile>> {
        check_key(key)?;
        let file = self.files().entry(key.to_string()).or_default().clone();
        Ok(Box::new(MemoryAppend { file }))
    }

    fn truncate_and_patch(
        &self,
        key: &str,
        len: u64,
        patch_offset: u64,
        patch: &[u8],
    ) -> Result<()> {
        let f = self.file(key)?;
        let mut data = lock(&f);
        data.resize(len as usize, 0);
        let start = patch_offset as usize;
        let end = start + patch.len();
        if end > data.len() {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(patch);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .files()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.files().remove(key);
        Ok(())
    }

    fn delete_dir(&self, prefix: &str) -> Result<()> {
        check_key(prefix.trim_end_matches('/'))?;
        let dir = format!("{}/", prefix.trim_end_matches('/'));
        self.files().retain(|k, _| !k.starts_with(&dir));
        Ok(())
    }

    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }

    fn try_lock(&self, key: &str) -> Result<Option<StoreLock>> {
        check_key(key)?;
        if !self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string())
        {
            return Ok(None);
        }
        self.files().entry(key.to_string()).or_default();
        Ok(Some(StoreLock {
            _held: Box::new(MemoryLock {
                store: self.clone(),
                key: key.to_string(),
            }),
        }))
    }
}

#[derive(Debug)]
struct MemoryLock {
    store: MemoryStore,
    key: String,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        self.store.files().remove(&self.key);
        self.store
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// Reads a memory file's first `end` bytes (its size when opened) a piece at a time.
#[derive(Debug)]
struct MemoryRead {
    file: Arc<Mutex<Vec<u8>>>,
    pos: u64,
    end: u64,
}

impl Read for MemoryRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let data = lock(&self.file);
        let end = (self.end as usize).min(data.len());
        let start = (self.pos as usize).min(end);
        let n = buf.len().min(end - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for MemoryRead {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.end.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

#[derive(Debug)]
struct MemoryAppend {
    file: Arc<Mutex<Vec<u8>>>,
}

impl AppendFile for MemoryAppend {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        lock(&self.file).extend_from_slice(data);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one suite every store must pass.
    fn suite(store: &dyn ArchiveStore) {
        assert!(!store.exists("r1/manifest.json").unwrap());
        assert!(store.get("r1/manifest.json").unwrap_err().is_not_found());

        store.put_atomic("r1/manifest.json", b"{\"a\":1}").unwrap();
        store.put_atomic("r1/manifest.json", b"{\"a\":2}").unwrap();
        assert_eq!(store.get("r1/manifest.json").unwrap(), b"{\"a\":2}");

        let mut a = store.open_append("r1/tracks/t1.opus").unwrap();
        a.append(b"OggS-one").unwrap();
        a.append(b"-two").unwrap();
        a.sync().unwrap();
        drop(a);
        let mut a = store.open_append("r1/tracks/t1.opus").unwrap();
        a.append(b"-three").unwrap();
        drop(a);
        assert_eq!(
            store.get("r1/tracks/t1.opus").unwrap(),
            b"OggS-one-two-three"
        );
        assert_eq!(store.size("r1/tracks/t1.opus").unwrap(), 18);
        let range = |offset: u64, len: u64| {
            let mut f = store.open_read("r1/tracks/t1.opus").unwrap();
            assert_eq!(f.size, 18);
            f.reader.seek(SeekFrom::Start(offset)).unwrap();
            let mut out = Vec::new();
            f.reader.take(len).read_to_end(&mut out).unwrap();
            out
        };
        assert_eq!(range(4, 4), b"-one");
        assert_eq!(range(16, 100), b"ee");
        assert_eq!(range(30, 4), b"");
        // An open file reads as it was when opened, even when the key is replaced meanwhile.
        store.put_atomic("r1/peaks.json", b"[1,2,3]").unwrap();
        let mut old = store.open_read("r1/peaks.json").unwrap();
        store.put_atomic("r1/peaks.json", b"[4,5,6,7]").unwrap();
        let mut read = String::new();
        old.reader.read_to_string(&mut read).unwrap();
        assert_eq!((old.size, read.as_str()), (7, "[1,2,3]"));
        store.delete("r1/peaks.json").unwrap();
        assert!(store.open_read("r1/gone").unwrap_err().is_not_found());

        store
            .truncate_and_patch("r1/tracks/t1.opus", 8, 0, b"oggs")
            .unwrap();
        assert_eq!(store.get("r1/tracks/t1.opus").unwrap(), b"oggs-one");

        store.put_atomic("r1/gone.json", b"{}").unwrap();
        store.delete("r1/gone.json").unwrap();
        store.delete("r1/gone.json").unwrap();
        assert!(!store.exists("r1/gone.json").unwrap());

        store.put_atomic("r2/manifest.json", b"{}").unwrap();
        assert_eq!(
            store.list("r1/").unwrap(),
            vec![
                "r1/manifest.json".to_string(),
                "r1/tracks/t1.opus".to_string()
            ]
        );
        store.delete_dir("r1").unwrap();
        assert!(store.list("r1/").unwrap().is_empty());
        assert!(store.exists("r2/manifest.json").unwrap());

        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "a b", ""] {
            assert!(store.put_atomic(bad, b"x").is_err(), "{bad:?} accepted");
            assert!(store.get(bad).is_err());
            assert!(store.try_lock(bad).is_err());
        }

        let held = store.try_lock("r3.lock").unwrap().expect("a free lock");
        assert!(store.exists("r3.lock").unwrap(), "a held lock is a key");
        assert!(store.try_lock("r3.lock").unwrap().is_none(), "taken twice");
        let other = store.try_lock("r4.lock").unwrap().expect("another name");
        drop(held);
        assert!(!store.exists("r3.lock").unwrap(), "let go and removed");
        let again = store.try_lock("r3.lock").unwrap().expect("free again");
        drop((again, other));
        assert!(!store.exists("r4.lock").unwrap());
    }

    #[test]
    fn local_store_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("archives")).unwrap();
        suite(&store);
        // No temporary files are left behind by atomic writes.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("archives/r2"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("manifest.json")]);
    }

    #[test]
    fn memory_store_passes_the_suite() {
        suite(&MemoryStore::new());
    }
}
