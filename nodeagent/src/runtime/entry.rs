//! How a container's first process enters its place: its cgroups, the pod's network
//! namespace, a mount namespace of its own with the volumes bind-mounted, its working
//! directory. All of it is done by the child between `fork` and `exec` (a pre-exec hook),
//! instead of by a chain of helper programs (`sh` for the cgroups, `ip netns exec`,
//! `unshare`, `sh`, `mkdir` and `mount` per volume): five to eight fewer programs started
//! per container.
//!
//! This is the one module of the crate that may use `unsafe`: registering a pre-exec hook is
//! unsafe because the hook runs in a forked copy of a multi-threaded process, and so is
//! `unshare` ([`unshare_network`], for the pod network namespaces of `super::netns`).
//! Everything the hook needs (paths as C strings, the file descriptors of `cgroup.procs` and of the network
//! namespace) is prepared before the fork; the hook itself only makes system calls through
//! `rustix` with those borrowed values: it neither allocates nor takes a lock.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Access, Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use super::mounts::Step;

/// Moves the calling thread into a new network namespace of its own. For a thread made to
/// make the namespace and ended after (`super::netns`): the rest of the process stays where
/// it was.
pub(super) fn unshare_network() -> io::Result<()> {
    // SAFETY: only the network namespace is unshared; the thread keeps sharing the process's
    // file table, so every file descriptor stays valid everywhere.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(Into::into)
}

/// One step, with its paths as C strings.
#[derive(Debug)]
enum CStep {
    Dir(CString),
    File(CString),
    Bind { source: CString, target: CString },
    ReadOnly(CString),
}

/// What the child does before it runs the container's program.
#[derive(Debug, Default)]
pub struct Entry {
    /// `cgroup.procs` of each cgroup to join, open for writing.
    cgroups: Vec<OwnedFd>,
    /// The pod's network namespace (a file under /run/netns), open.
    netns: Option<OwnedFd>,
    /// A mount namespace of its own, private propagation, with the steps below.
    mounts: Option<Vec<CStep>>,
    /// Where the program starts (after the mounts: it may be on a volume).
    workdir: Option<CString>,
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} contains a NUL byte", path.display()),
        )
    })
}

impl Entry {
    /// Whether the child has anything to do.
    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty()
            && self.netns.is_none()
            && self.mounts.is_none()
            && self.workdir.is_none()
    }

    /// Joins the cgroups at `dirs` (their `cgroup.procs` are opened now).
    pub fn cgroups(mut self, dirs: &[std::path::PathBuf]) -> io::Result<Entry> {
        for dir in dirs {
            let procs = dir.join("cgroup.procs");
            let fd = rustix::fs::open(&procs, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", procs.display())))?;
            self.cgroups.push(fd);
        }
        Ok(self)
    }

    /// Enters the network namespace at `path` (opened now).
    pub fn network(mut self, path: &Path) -> io::Result<Entry> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.netns = Some(fd);
        Ok(self)
    }

    /// A mount namespace of its own in which `steps` are made, then `workdir` entered.
    pub fn mounts(mut self, steps: &[Step], workdir: &Path) -> io::Result<Entry> {
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            out.push(match step {
                Step::Dir(p) => CStep::Dir(c_path(p)?),
                Step::File(p) => CStep::File(c_path(p)?),
                Step::Bind { source, target } => CStep::Bind {
                    // Absolute: the child resolves it after entering the container's working
                    // directory, not the agent's (a relative `--data-dir`).
                    source: c_path(&std::path::absolute(source)?)?,
                    target: c_path(target)?,
                },
                Step::ReadOnly(p) => CStep::ReadOnly(c_path(p)?),
            });
        }
        self.mounts = Some(out);
        self.workdir = Some(c_path(&std::path::absolute(workdir)?)?);
        Ok(self)
    }

    /// What each step of [`Entry::enter`] does, in its order, for errors.
    fn steps(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cgroups
            .iter()
            .map(|_| "joining the container's cgroup".to_owned())
            .collect();
        out.push("entering the pod's network namespace".into());
        out.push("making a mount namespace".into());
        out.push("making its mounts private".into());
        out.push("unmounting the host's /sys".into());
        out.push("mounting the pod's /sys".into());
        for step in self.mounts.iter().flatten() {
            out.push(match step {
                CStep::Dir(p) => format!("making the mount point {}", p.to_string_lossy()),
                CStep::File(p) => format!("making the mount point {}", p.to_string_lossy()),
                CStep::Bind { source, target } => format!(
                    "bind-mounting {} at {}",
                    source.to_string_lossy(),
                    target.to_string_lossy()
                ),
                CStep::ReadOnly(p) => format!("making {} read-only", p.to_string_lossy()),
            });
        }
        out.push("entering the working directory".into());
        out
    }

    /// Done by the child between fork and exec. Allocation-free: only system calls on what
    /// was prepared. A failure says which step it was through `failed` (its index in
    /// [`Entry::steps`], four bytes) before the spawn fails with its errno.
    fn enter(&self, failed: &std::os::unix::net::UnixStream) -> io::Result<()> {
        let mut step: u32 = 0;
        let result = self.steps_in_order(&mut step);
        if result.is_err() {
            // Best effort: the errno still reaches the parent without it.
            let _sent = rustix::io::write(failed, &step.to_le_bytes());
        }
        result
    }

    fn steps_in_order(&self, step: &mut u32) -> io::Result<()> {
        for fd in &self.cgroups {
            // "0" moves the writing process itself.
            rustix::io::write(fd, b"0")?;
            *step += 1;
        }
        if let Some(fd) = &self.netns {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(fd),
                Some(LinkNameSpaceType::Network),
            )?;
        }
        *step += 1;
        if self.netns.is_some() || self.mounts.is_some() {
            // SAFETY: the child has a single thread; no file table is unshared.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS)? };
            *step += 1;
            rustix::mount::mount_change(
                c"/",
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
            )?;
            *step += 1;
        } else {
            *step += 2;
        }
        if self.netns.is_some() {
            // The pod's own /sys (its interfaces under /sys/class/net), as `ip netns exec`
            // gives it; read-only where the kernel refuses a writable one. No sysfs mounted
            // at /sys (a minimal host) is fine: one is mounted there next.
            if let Err(e) = rustix::mount::unmount(c"/sys", UnmountFlags::DETACH)
                && e != rustix::io::Errno::INVAL
            {
                return Err(e.into());
            }
            *step += 1;
            if let Err(e) =
                rustix::mount::mount(c"sysfs", c"/sys", c"sysfs", MountFlags::empty(), None)
            {
                if e != rustix::io::Errno::PERM {
                    return Err(e.into());
                }
                rustix::mount::mount(c"sysfs", c"/sys", c"sysfs", MountFlags::RDONLY, None)?;
            }
            *step += 1;
        } else {
            *step += 2;
        }
        for cstep in self.mounts.iter().flatten() {
            match cstep {
                CStep::Dir(p) => {
                    match rustix::fs::mkdir(p.as_c_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                CStep::File(p) => {
                    if rustix::fs::access(p.as_c_str(), Access::EXISTS).is_err() {
                        rustix::fs::open(
                            p.as_c_str(),
                            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o644),
                        )?;
                    }
                }
                CStep::Bind { source, target } => {
                    rustix::mount::mount_bind(source.as_c_str(), target.as_c_str())?;
                }
                CStep::ReadOnly(p) => {
                    rustix::mount::mount_remount(
                        p.as_c_str(),
                        MountFlags::BIND | MountFlags::RDONLY,
                        c"",
                    )?;
                }
            }
            *step += 1;
        }
        if let Some(dir) = &self.workdir {
            rustix::process::chdir(dir.as_c_str())?;
        }
        Ok(())
    }

    /// Makes `command`'s child do all this before it runs its program. What comes back
    /// explains a failed spawn.
    pub fn install(self, command: &mut tokio::process::Command) -> io::Result<Explain> {
        if self.is_empty() {
            return Ok(Explain::default());
        }
        let (parent, child) = std::os::unix::net::UnixStream::pair()?;
        parent.set_nonblocking(true)?;
        let entry = Arc::new(self);
        let inside = Arc::clone(&entry);
        // SAFETY: `enter` only makes system calls with values prepared before the fork (C
        // strings and open descriptors owned by `entry`, the socket `child`): no allocation,
        // no lock, nothing shared with the parent's other threads is touched.
        unsafe {
            command.pre_exec(move || inside.enter(&child));
        }
        Ok(Explain {
            failed: Some((parent, entry)),
        })
    }
}

/// Says which step of an [`Entry`] failed, after the spawn did.
#[derive(Debug, Default)]
pub struct Explain {
    /// The socket the child reports on, and the entry whose steps it numbers (described only
    /// when one failed).
    failed: Option<(std::os::unix::net::UnixStream, Arc<Entry>)>,
}

impl Explain {
    /// `error` (the spawn's) with the step that failed, when the child said.
    pub fn error(&self, error: &io::Error) -> String {
        use std::io::Read;
        let mut bytes = [0u8; 4];
        let step = self.failed.as_ref().and_then(|(socket, entry)| {
            let mut reader: &std::os::unix::net::UnixStream = socket;
            reader.read_exact(&mut bytes).ok()?;
            let i = usize::try_from(u32::from_le_bytes(bytes)).ok()?;
            entry.steps().into_iter().nth(i)
        });
        match step {
            Some(step) => format!("{step}: {error}"),
            None => error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the test runs as root, as mount namespaces need; elsewhere it is skipped, with
    /// a line saying so, except under CI (which runs as root), where that is a failure.
    fn as_root() -> bool {
        if rustix::process::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root: mount namespaces must be testable"
        );
        eprintln!("not root: mount namespaces cannot be made; skipped");
        false
    }

    #[test]
    fn an_entry_with_nothing_to_do_installs_nothing() {
        let entry = Entry::default();
        assert!(entry.is_empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = Entry::default()
            .mounts(&[Step::Dir(dir.path().join("a"))], dir.path())
            .expect("prepared");
        assert!(!entry.is_empty());
    }

    #[test]
    fn a_path_with_a_nul_byte_is_refused_before_the_fork() {
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a\0b"));
        let err = Entry::default()
            .mounts(&[Step::Dir(bad.to_owned())], Path::new("/"))
            .expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_missing_cgroup_is_named_in_the_error() {
        let err = Entry::default()
            .cgroups(&[std::path::PathBuf::from("/nonexistent/ferry-cgroup")])
            .expect_err("missing");
        assert!(
            err.to_string()
                .contains("/nonexistent/ferry-cgroup/cgroup.procs"),
            "{err}"
        );
    }

    #[test]
    fn relative_sources_and_directories_are_made_absolute_before_the_fork() {
        let entry = Entry::default()
            .mounts(
                &[Step::Bind {
                    source: "data/volume".into(),
                    target: "/srv".into(),
                }],
                Path::new("data/pod"),
            )
            .expect("prepared");
        let cwd = std::env::current_dir().expect("cwd");
        match entry.mounts.as_deref() {
            Some([CStep::Bind { source, .. }]) => {
                assert_eq!(
                    source.to_bytes(),
                    cwd.join("data/volume").as_os_str().as_bytes()
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            entry.workdir.as_deref().map(|d| d.to_bytes()),
            Some(cwd.join("data/pod").as_os_str().as_bytes())
        );
    }

    /// A step that fails in the child is named in the parent's error (as root).
    #[tokio::test]
    async fn a_failed_bind_mount_is_named() {
        if !as_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        let steps = [
            Step::Dir(target.clone()),
            Step::Bind {
                source: dir.path().join("missing"),
                target: target.clone(),
            },
        ];
        let entry = Entry::default()
            .mounts(&steps, dir.path())
            .expect("prepared");
        let mut cmd = tokio::process::Command::new("/bin/true");
        let explain = entry.install(&mut cmd).expect("installed");
        let err = cmd.spawn().expect_err("the mount fails");
        let text = explain.error(&err);
        assert!(
            text.starts_with(&format!(
                "bind-mounting {} at {}: ",
                dir.path().join("missing").display(),
                target.display()
            )),
            "{text}"
        );
        assert_eq!(err.raw_os_error(), Some(2), "{err}");
    }

    /// The child joins a cgroup, enters a mount namespace with a read-only bind mount and
    /// starts in its working directory (as root, where cgroup v2 is writable).
    #[tokio::test]
    async fn the_child_enters_its_mounts_and_directory() {
        if !as_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let volume = dir.path().join("volume");
        std::fs::create_dir(&volume).expect("volume");
        std::fs::write(volume.join("file"), "data").expect("file");
        let target = dir.path().join("inside/seen");
        let steps = super::super::mounts::plan(&[super::super::mounts::Mount {
            source: volume.clone(),
            target: target.display().to_string(),
            read_only: true,
        }]);
        let entry = Entry::default().mounts(&steps, &target).expect("prepared");
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.args([
            "-c",
            "cat file; pwd; touch x 2>/dev/null && echo writable || echo read-only",
        ]);
        entry.install(&mut cmd).expect("installed");
        let out = cmd.output().await.expect("ran");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text,
            format!("data{}\nread-only\n", target.display()),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Nothing was mounted on the host: the mount point there is empty.
        assert_eq!(std::fs::read_dir(&target).expect("dir").count(), 0);
    }
}
