//! The kite.key file: `$KITE_HOME/kite.key`, default `~/.kite/kite.key`, mode 0400 in a
//! 0700 directory. This is the only part of `auth` that touches the file system.

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::AuthError;

/// Name of the kite key file inside the kite home.
pub const KITE_KEY_FILE: &str = "kite.key";

/// The kite home: `KITE_HOME` when set and non-empty, else `~/.kite`.
pub fn kite_home() -> Result<PathBuf, AuthError> {
    #[allow(deprecated)] // home_dir is correct on Unix, which is what kites run on.
    let home = std::env::home_dir();
    home_from(std::env::var_os("KITE_HOME"), home)
}

fn home_from(kite_home: Option<OsString>, home: Option<PathBuf>) -> Result<PathBuf, AuthError> {
    match kite_home {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => home
            .filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(".kite"))
            .ok_or(AuthError::NoHome),
    }
}

/// The default kite key path, `<kite home>/kite.key`.
pub fn kite_key_path() -> Result<PathBuf, AuthError> {
    Ok(kite_home()?.join(KITE_KEY_FILE))
}

/// Reads a kite key (surrounding whitespace removed) from `path`, or from
/// [`kite_key_path`] when `None`.
pub fn read_kite_key(path: Option<&Path>) -> Result<String, AuthError> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => kite_key_path()?,
    };
    let text = fs::read_to_string(&path).map_err(|source| AuthError::Io { path, source })?;
    Ok(text.trim().to_string())
}

/// Writes `jwt` to `<home>/kite.key`, creating `home` (0700) if needed and replacing an
/// existing (read-only) key atomically; the file is left 0400. Returns the file's path.
pub fn write_kite_key(home: &Path, jwt: &str) -> Result<PathBuf, AuthError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuthError::Io { path, source }
    };
    let mut dir = fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(home).map_err(io(home))?;

    let path = home.join(KITE_KEY_FILE);
    let tmp = home.join(format!(
        ".{KITE_KEY_FILE}.{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o400);
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(jwt.as_bytes())?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err(io(&path)(e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_prefers_kite_home_then_dot_kite() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            home_from(Some("/srv/k".into()), home.clone()).unwrap(),
            PathBuf::from("/srv/k")
        );
        assert_eq!(
            home_from(Some("".into()), home.clone()).unwrap(),
            PathBuf::from("/home/u/.kite")
        );
        assert_eq!(
            home_from(None, home).unwrap(),
            PathBuf::from("/home/u/.kite")
        );
        assert!(matches!(home_from(None, None), Err(AuthError::NoHome)));
    }

    #[test]
    fn write_then_read_with_permissions_and_replace() {
        let base =
            std::env::temp_dir().join(format!("kite-auth-test-{}", uuid::Uuid::new_v4().simple()));
        let home = base.join("nested").join(".kite");
        let path = write_kite_key(&home, "first.jwt.value").unwrap();
        assert_eq!(path, home.join("kite.key"));
        assert_eq!(read_kite_key(Some(&path)).unwrap(), "first.jwt.value");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o400);
            assert_eq!(mode(&home), 0o700);
        }

        // A read-only key is replaced, and no temporary file is left behind.
        write_kite_key(&home, "  second.jwt.value\n").unwrap();
        assert_eq!(read_kite_key(Some(&path)).unwrap(), "second.jwt.value");
        let names: Vec<_> = fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("kite.key")]);

        let missing = read_kite_key(Some(&home.join("nope"))).unwrap_err();
        assert!(matches!(missing, AuthError::Io { .. }), "{missing}");
        fs::remove_dir_all(&base).unwrap();
    }
}
