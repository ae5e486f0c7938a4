//! A container's mounts for the `process` runtime: as root, the container's command is started
//! through util-linux's `unshare` in a mount namespace of its own (private propagation), in
//! which each volume is bind-mounted at its `mountPath` (read-only where asked), and the command
//! then runs in its working directory. A `mountPath` missing on the host is created there
//! (empty) to mount onto; nothing is mounted on the host itself.

use std::path::{Path, PathBuf};

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// What is mounted (a directory or file on the host).
    pub source: PathBuf,
    /// Where the container sees it.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// A program by absolute path, from the places Debian keeps it.
fn program(name: &str) -> String {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .into_iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
        .map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

/// `text` quoted for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The program and arguments that run `command` in `workdir` with `mounts` in place (the
/// command itself when there is nothing to mount).
pub fn wrap(mounts: &[Mount], workdir: &Path, command: &[String]) -> Vec<String> {
    if mounts.is_empty() {
        return command.to_vec();
    }
    let mut steps = Vec::new();
    for m in mounts {
        let (source, target) = (quote(&m.source.display().to_string()), quote(&m.target));
        let place = if m.source.is_dir() {
            format!("mkdir -p {target}")
        } else {
            let parent = quote(
                &Path::new(&m.target)
                    .parent()
                    .map_or_else(|| "/".into(), |p| p.display().to_string()),
            );
            format!("mkdir -p {parent} && {{ [ -e {target} ] || : > {target}; }}")
        };
        steps.push(format!("{place} && mount --bind {source} {target}"));
        if m.read_only {
            steps.push(format!("mount -o remount,bind,ro {target}"));
        }
    }
    steps.push(format!("cd {}", quote(&workdir.display().to_string())));
    steps.push("exec \"$@\"".into());
    let mut out = vec![
        program("unshare"),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        program("sh"),
        "-c".into(),
        steps.join(" && "),
        "sh".into(),
    ];
    out.extend(command.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_mount_runs_the_command_itself() {
        let cmd = vec!["sleep".to_owned(), "1".to_owned()];
        assert_eq!(wrap(&[], Path::new("/tmp"), &cmd), cmd);
    }

    #[test]
    fn mounts_are_made_in_a_namespace_then_the_command_runs_in_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounts = [Mount {
            source: dir.path().to_owned(),
            target: "/srv/it's".into(),
            read_only: true,
        }];
        let out = wrap(&mounts, Path::new("/srv"), &["python3".to_owned()]);
        assert!(out[0].ends_with("unshare"), "{out:?}");
        let script = &out[7];
        assert!(
            script.starts_with("mkdir -p '/srv/it'\\''s' && mount --bind"),
            "{script}"
        );
        assert!(
            script.contains("mount -o remount,bind,ro '/srv/it'\\''s'"),
            "{script}"
        );
        assert!(script.ends_with("cd '/srv' && exec \"$@\""), "{script}");
        assert_eq!(&out[8..], ["sh", "python3"]);
    }
}
