//! A volume directory whose files change all at once, as the kubelet's atomic writer keeps
//! configMap, secret, downwardAPI and projected volumes: the files live in a hidden generation
//! directory `..<stamp>`, `..data` is a symlink to the current one, and each top-level name is
//! a symlink through `..data`. An update writes a new generation and swaps `..data` with one
//! rename, so a reader sees the old files or the new ones, never a mix, and the directory itself
//! (bind-mounted into the pod) is never replaced.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The files of one volume: relative path → (content, mode).
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// The files under `base`, relative to it, with their modes.
fn read_tree(base: &Path) -> io::Result<Files> {
    let mut files = Files::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        for entry in std::fs::read_dir(base.join(&relative))? {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let content = std::fs::read(base.join(&path))?;
                files.insert(
                    path.to_string_lossy().into_owned(),
                    (content, meta.permissions().mode() & 0o777),
                );
            }
        }
    }
    Ok(files)
}

/// The top-level names of `files` (`a/b` → `a`).
fn top_level(files: &Files) -> Vec<String> {
    let mut names: Vec<String> = files
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p).to_owned())
        .collect();
    names.dedup();
    names
}

/// Makes `dir` hold exactly `files`; returns whether anything changed.
pub fn write(dir: &Path, files: &Files) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let current = std::fs::read_link(dir.join(DATA)).ok();
    if let Some(generation) = &current
        && read_tree(&dir.join(generation)).ok().as_ref() == Some(files)
    {
        return Ok(false);
    }
    // A new generation with the files.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let generation = PathBuf::from(format!("..{stamp}"));
    let fresh = dir.join(&generation);
    std::fs::create_dir(&fresh)?;
    for (relative, (content, mode)) in files {
        let path = fresh.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    // Swap `..data` to it in one rename.
    let tmp = dir.join(DATA_TMP);
    if tmp.symlink_metadata().is_ok() {
        std::fs::remove_file(&tmp)?;
    }
    std::os::unix::fs::symlink(&generation, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;
    // The visible names: one symlink per top-level entry; anything else goes.
    let wanted = top_level(files);
    for name in &wanted {
        let link = dir.join(name);
        let target = Path::new(DATA).join(name);
        if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            remove_any(&link)?;
            std::os::unix::fs::symlink(&target, &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let hidden = name.starts_with("..");
        let old_generation = hidden && name != DATA && Path::new(&name) != generation;
        if (!hidden && !wanted.contains(&name)) || old_generation {
            remove_any(&dir.join(&name))?;
        }
    }
    Ok(true)
}

/// Removes a file, symlink or directory tree, if there is one.
fn remove_any(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_appear_with_their_modes_and_change_all_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("v");
        let first = Files::from([
            ("index.html".into(), (b"<h1>hi</h1>".to_vec(), 0o644)),
            ("sub/key".into(), (b"secret".to_vec(), 0o600)),
        ]);
        assert!(write(&target, &first).expect("written"));
        assert_eq!(
            std::fs::read_to_string(target.join("index.html")).expect("read"),
            "<h1>hi</h1>"
        );
        let mode = std::fs::metadata(target.join("sub/key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same files again: nothing is written.
        assert!(!write(&target, &first).expect("unchanged"));
        // New content: the old generation and the dropped names go.
        let second = Files::from([("index.html".into(), (b"<h1>bye</h1>".to_vec(), 0o644))]);
        assert!(write(&target, &second).expect("updated"));
        assert_eq!(
            std::fs::read_to_string(target.join("index.html")).expect("read"),
            "<h1>bye</h1>"
        );
        assert!(!target.join("sub").exists());
        let mut names: Vec<String> = std::fs::read_dir(&target)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[1], DATA);
        assert_eq!(names[2], "index.html");
        assert!(write(&target, &Files::new()).expect("emptied"));
        assert!(!target.join("index.html").exists());
    }
}
