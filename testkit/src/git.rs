//! A Git repository in a temporary directory, committed to with the real `git` CLI: what the
//! GitOps tests follow.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Git repository in a temporary directory, committed to with the `git` CLI.
pub struct Repo {
    dir: tempfile::TempDir,
    git: PathBuf,
}

impl Repo {
    /// An empty repository on branch `main`.
    pub fn new(git: &Path) -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("tempdir"),
            git: git.to_path_buf(),
        };
        repo.run(&["init", "-q", "-b", "main"]);
        repo
    }

    /// Its work tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `git ARGS` in it (as Ada Lovelace, committed by CI Bot); returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.git)
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Ada Lovelace")
            .env("GIT_AUTHOR_EMAIL", "ada@example.org")
            .env("GIT_COMMITTER_NAME", "CI Bot")
            .env("GIT_COMMITTER_EMAIL", "ci@example.org")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Writes a file (making its folders).
    pub fn write(&self, path: &str, text: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }

    /// Removes a file.
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).expect("remove");
    }

    /// Commits everything; returns the SHA.
    pub fn commit(&self, message: &str) -> String {
        self.run(&["add", "-A"]);
        self.run(&["commit", "-q", "--allow-empty", "-m", message]);
        self.run(&["rev-parse", "HEAD"])
    }
}
