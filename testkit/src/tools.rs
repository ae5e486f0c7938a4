//! Outside tools the end-to-end tests drive (kubectl, git, python3, openssl, sshd): found when installed; when not,
//! `None` so a developer's run can go on, and a failure under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn on_path(name: &str) -> Option<PathBuf> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

fn missing(name: &str) -> Option<PathBuf> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} is required under CI=true"
    );
    eprintln!("{name} not installed; skipping");
    None
}

/// `preferred` when it exists, else `name` on PATH.
fn at_or_on_path(preferred: &str, name: &str) -> Option<PathBuf> {
    let path = Path::new(preferred);
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    on_path(name).or_else(|| missing(name))
}

/// The kubectl to judge with: 1.33 from the cloud SDK, else the one on PATH.
pub fn kubectl() -> Option<PathBuf> {
    at_or_on_path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "kubectl")
}

/// The `git` command.
pub fn git() -> Option<PathBuf> {
    on_path("git").or_else(|| missing("git"))
}

/// `python3` (serves Git over HTTPS in the GitOps tests).
pub fn python3() -> Option<PathBuf> {
    on_path("python3").or_else(|| missing("python3"))
}

/// The `openssl` command (makes test certificates, signs webhook bodies).
pub fn openssl() -> Option<PathBuf> {
    on_path("openssl").or_else(|| missing("openssl"))
}

/// OpenSSH's server (`/usr/sbin/sshd`; serves Git over `ssh://` in the GitOps tests).
pub fn sshd() -> Option<PathBuf> {
    at_or_on_path("/usr/sbin/sshd", "sshd")
}

/// OpenSSH's `ssh-keygen`.
pub fn ssh_keygen() -> Option<PathBuf> {
    on_path("ssh-keygen").or_else(|| missing("ssh-keygen"))
}

/// The official Python `kubernetes` client's interpreter (installed by the test command into
/// `target/client-venv`).
pub fn python_client() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/client-venv/bin/python");
    let ok = venv.is_file()
        && Command::new(&venv)
            .args(["-c", "import kubernetes"])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        Some(venv)
    } else {
        missing("the Python kubernetes client (ops/test.sh installs it)")
    }
}
