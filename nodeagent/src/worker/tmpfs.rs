//! `emptyDir` volumes with `medium: Memory`: a tmpfs mounted on the volume's directory on the
//! host (so that every container of the pod shares it, as they share any emptyDir), sized by
//! its `sizeLimit`, and unmounted before the pod's volume directory is removed. Mounting takes
//! root; without it the volume is an ordinary directory and the agent says so.

use std::io;
use std::path::Path;

/// Whether `path` is where a filesystem is mounted (its device differs from its parent's).
pub fn is_mountpoint(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return false;
    };
    match (rustix::fs::stat(path), rustix::fs::stat(parent)) {
        (Ok(own), Ok(above)) => own.st_dev != above.st_dev,
        _ => false,
    }
}

fn run(program: &str, args: &[&str]) -> io::Result<()> {
    let out = std::process::Command::new(program).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Mounts a tmpfs of at most `size` bytes (no limit: half the memory, tmpfs's default) on
/// `dir`, unless one is there already.
pub fn mount(dir: &Path, size: Option<u64>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if is_mountpoint(dir) {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        tracing::warn!(dir = %dir.display(), "not root: an emptyDir of medium Memory is an ordinary directory");
        return Ok(());
    }
    let mut options = "mode=0777".to_owned();
    if let Some(size) = size {
        options.push_str(&format!(",size={size}"));
    }
    let target = dir.display().to_string();
    run("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &target])
}

/// Unmounts every tmpfs mounted on a directory directly under `dir` (a pod's volumes).
pub fn unmount_under(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && is_mountpoint(&path) {
            run("umount", &[&path.display().to_string()])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_directory_is_no_mountpoint_and_proc_is_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!is_mountpoint(dir.path()));
        assert!(is_mountpoint(Path::new("/proc")));
    }

    #[test]
    fn a_memory_volume_is_a_tmpfs_until_unmounted() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let volume = dir.path().join("cache");
        mount(&volume, Some(1 << 20)).expect("mounted");
        assert!(is_mountpoint(&volume));
        mount(&volume, Some(1 << 20)).expect("mounting again changes nothing");
        std::fs::write(volume.join("f"), b"in memory").expect("write");
        unmount_under(dir.path()).expect("unmounted");
        assert!(!is_mountpoint(&volume));
        assert!(
            !volume.join("f").exists(),
            "the tmpfs took its files with it"
        );
    }
}
