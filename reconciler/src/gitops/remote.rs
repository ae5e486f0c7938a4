//! A remote Git repository (`https://` and `http://` over Git's smart HTTP protocol, `git://`,
//! `ssh://`) as a source: HTTPS through rustls, trusting the system's certificate store (or
//! the bundle `SSL_CERT_FILE` names). Fetched with gix into a bare mirror under ferry's data
//! directory, then read like a local repository. Branches land in `refs/heads/*`, tags in `refs/tags/*`, the remote's HEAD
//! in `refs/remotes/origin/HEAD`. Force-pushes are followed (the refspecs are forced).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::checkout::{Checkout, CheckoutError, Snapshot};
use super::git::{Follow, GitCheckout};

/// What is fetched: every branch and tag, and the remote's HEAD.
const REFSPECS: [&str; 3] = [
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+HEAD:refs/remotes/origin/HEAD",
];

/// A remote repository and its local mirror.
#[derive(Debug)]
pub struct RemoteCheckout {
    url: String,
    mirror: PathBuf,
    follow: Follow,
    subpath: String,
}

impl RemoteCheckout {
    /// A remote source mirrored at `mirror` (created on the first fetch).
    pub fn new(url: &str, mirror: &Path, follow: Follow, subpath: &str) -> RemoteCheckout {
        RemoteCheckout {
            url: url.to_owned(),
            mirror: mirror.to_path_buf(),
            follow,
            subpath: subpath.to_owned(),
        }
    }

    /// The error with its causes ("handshake failed: ...: invalid peer certificate"): the
    /// outermost alone rarely says what to fix.
    fn fetch_error(&self, error: impl std::error::Error) -> CheckoutError {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(inner) = cause {
            let text = inner.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = inner.source();
        }
        CheckoutError::Fetch {
            url: self.url.clone(),
            message,
        }
    }

    /// The mirror, read as a local repository.
    fn local(&self) -> Result<GitCheckout, CheckoutError> {
        let follow = match &self.follow {
            Follow::Head => Follow::Ref("refs/remotes/origin/HEAD".into()),
            other => other.clone(),
        };
        GitCheckout::open(&self.mirror, follow, &self.subpath)
    }
}

impl Checkout for RemoteCheckout {
    fn fetch(&self) -> Result<(), CheckoutError> {
        let repo = if self.mirror.join("HEAD").is_file() {
            gix::open(&self.mirror).map_err(|e| self.fetch_error(e))?
        } else {
            std::fs::create_dir_all(&self.mirror).map_err(|e| self.fetch_error(e))?;
            gix::init_bare(&self.mirror).map_err(|e| self.fetch_error(e))?
        };
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(|e| self.fetch_error(e))?
            .with_refspecs(REFSPECS, gix::remote::Direction::Fetch)
            .map_err(|e| self.fetch_error(e))?;
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| self.fetch_error(e))?;
        let interrupt = AtomicBool::new(false);
        connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| self.fetch_error(e))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| self.fetch_error(e))?;
        Ok(())
    }

    fn head(&self) -> Result<String, CheckoutError> {
        self.local()?.head()
    }

    fn resolve(&self, revision: &str) -> Result<String, CheckoutError> {
        self.local()?.resolve(revision)
    }

    fn snapshot(&self, id: &str, known: &HashSet<String>) -> Result<Snapshot, CheckoutError> {
        self.local()?.snapshot(id, known)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn is_remote(&self) -> bool {
        true
    }
}
