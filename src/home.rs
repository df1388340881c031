//! The smimekit home: one folder holding every store, its format version, its lock, and the
//! crash-safe file primitives every store uses.
//!
//! Layout (documented in the README):
//! ```text
//! HOME/                    0700
//!   store.json             {"format": 1} — refuse to touch a newer format
//!   lock                   exclusive lock taken by every writer
//!   ids/<sha256>.pem       one digital ID: encrypted PKCS#8 key + certificate + chain
//!   pending/<sha256>.pem   a key waiting for its certificate: encrypted key + CSR
//!   contacts/<sha256>.pem  a correspondent's certificate; contacts/index.json its metadata
//!   trust/<sha256>.pem     a user trust anchor
//! ```
//! Every write goes to a temp file in the same folder (created 0600 with O_EXCL), is fsynced, renamed over
//! the target, and the folder is fsynced: a crash leaves the old or the new file, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The store format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Environment variable naming the home folder.
pub const HOME_ENV: &str = "SMIMEKIT_HOME";

/// Test hook: when set to a file name (e.g. `id-abc.pem`), a write of that file stops the process between
/// the temp-file write and the rename, as a crash would. Used by the crash-safety test.
pub const CRASH_HOOK_ENV: &str = "SMIMEKIT_TEST_CRASH_BEFORE_RENAME";

/// An opened home folder.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

/// Held while a command writes to the store; dropping it releases the lock.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoreMeta {
    format: u32,
}

impl Home {
    /// Resolves the home folder: `explicit`, else `$SMIMEKIT_HOME`, else the platform data folder.
    pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        directories::ProjectDirs::from("org", "smimekit", "smimekit")
            .map(|d| d.data_dir().to_path_buf())
            .ok_or_else(|| {
                Error::store("cannot determine a home folder for smimekit")
                    .hint("pass --home DIR or set SMIMEKIT_HOME")
            })
    }

    /// Opens the home at `root`, creating it (0700) if it does not exist, and checks its format and permissions.
    pub fn open(root: &Path) -> Result<Home> {
        let home = Home {
            root: root.to_path_buf(),
        };
        if !root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| {
                    Error::io("create the home folder", root, e).hint("pass a writable --home DIR")
                })?;
            // recursive create may leave parents with the umask's mode; the home itself must be 0700.
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("set permissions on", root, e))?;
        }
        home.check_dir(root)?;
        let meta_path = root.join("store.json");
        match fs::read(&meta_path) {
            Ok(bytes) => {
                let meta: StoreMeta = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::store(format!(
                        "{} is not a smimekit store file: {e}",
                        meta_path.display()
                    ))
                    .hint("restore it from a backup, or point --home at another folder")
                })?;
                if meta.format > FORMAT_VERSION {
                    return Err(Error::store(format!(
                        "the store at {} has format {} but this smimekit reads format {FORMAT_VERSION}",
                        root.display(),
                        meta.format
                    ))
                    .hint("upgrade smimekit"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &meta_path, e)),
        }
        Ok(home)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A sub-folder of the home (not created).
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Refuses folders that others could write to or that belong to someone else (T46).
    fn check_dir(&self, dir: &Path) -> Result<()> {
        let md = fs::symlink_metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
        if md.file_type().is_symlink() && dir != self.root {
            return Err(Error::store(format!(
                "{} is a symbolic link; refusing to follow it",
                dir.display()
            ))
            .hint("replace the link with a real folder"));
        }
        let md = fs::metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
        if !md.is_dir() {
            return Err(Error::store(format!("{} is not a folder", dir.display()))
                .hint("pass --home DIR naming a folder"));
        }
        // SAFETY-free: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if md.uid() != uid {
            return Err(Error::store(format!(
                "{} belongs to another user (uid {})",
                dir.display(),
                md.uid()
            ))
            .hint("use a home folder you own"));
        }
        if md.mode() & 0o022 != 0 {
            return Err(Error::store(format!(
                "{} is writable by other users (mode {:o}); refusing to use it",
                dir.display(),
                md.mode() & 0o777
            ))
            .hint(format!("run: chmod 700 {}", dir.display())));
        }
        Ok(())
    }

    /// Takes the store's exclusive write lock, waiting for another smimekit process if needed, and writes the
    /// format file on first use.
    pub fn lock(&self) -> Result<WriteLock> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                Error::io("open the lock file", &path, e)
                    .hint("check that the home folder is writable")
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "smimekit: waiting for another smimekit process to finish with {}",
                    self.root.display()
                );
                file.lock().map_err(|e| Error::io("lock", &path, e))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        let meta_path = self.root.join("store.json");
        if !meta_path.exists() {
            let meta = serde_json::to_vec_pretty(&StoreMeta {
                format: FORMAT_VERSION,
            })
            .expect("serialize");
            self.write_atomic(&meta_path, &meta)?;
        }
        Ok(WriteLock { _file: file })
    }

    /// Creates (0700) and checks a store sub-folder.
    pub fn ensure_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir(name);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(
                    Error::io("create", &dir, e).hint("check that the home folder is writable")
                );
            }
        }
        self.check_dir(&dir)?;
        Ok(dir)
    }

    /// Writes `bytes` to `path` atomically: temp file (0600, O_EXCL) in the same folder, fsync, rename,
    /// fsync of the folder. The caller must hold the [`WriteLock`].
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic(path, bytes)
    }

    /// Removes a store file durably (unlink, then fsync the folder).
    pub fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Reads a store file, refusing symbolic links and a store folder that fails the checks of
    /// [`Home::ensure_dir`] (a symlinked `ids/` pointing at a world-writable folder must not feed the store).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        if let Some(parent) = path.parent()
            && parent != self.root
            && parent.exists()
        {
            self.check_dir(parent)?;
        }
        read_nofollow(path)
    }

    /// The regular files of a store folder with the given extension, sorted by name. Missing folder → empty.
    pub fn list(&self, name: &str, ext: &str) -> Result<Vec<PathBuf>> {
        let dir = self.dir(name);
        if dir.exists() {
            self.check_dir(&dir)?;
        }
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", &dir, e))?;
            let p = ent.path();
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(ext) {
                continue; // temp files of an interrupted write are ignored
            }
            if ent.file_type().map(|t| t.is_file()).unwrap_or(false) {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Reads a file without following a symbolic link at its last component.
pub fn read_nofollow(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io("read", path, e))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(v)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

/// Atomic replacement of `path` with `bytes` (see [`Home::write_atomic`]). Also used for user output files,
/// so a failed command never leaves a partial file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("sync", tmp.path(), e))?;
    crash_hook(path);
    tmp.persist(path)
        .map_err(|e| Error::io("replace", path, e.error))?;
    sync_dir(dir)
}

/// Simulates a crash between the temp-file write and the rename (tests only; see [`CRASH_HOOK_ENV`]).
fn crash_hook(path: &Path) {
    if let Some(target) = std::env::var_os(CRASH_HOOK_ENV)
        && path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&*target.to_string_lossy()))
    {
        // An abort skips destructors, so the temp file stays behind exactly as after kill -9.
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn atomic_write_sets_0600_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::open(&d.path().join("h")).unwrap();
        let _l = home.lock().unwrap();
        let dir = home.ensure_dir("ids").unwrap();
        let p = dir.join("a.pem");
        home.write_atomic(&p, b"one").unwrap();
        home.write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(home.root()).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn world_writable_home_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path().join("h");
        fs::create_dir(&h).unwrap();
        fs::set_permissions(&h, fs::Permissions::from_mode(0o777)).unwrap();
        let e = Home::open(&h).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
    }
}
