//! Named network namespaces, made and removed by the node agent itself the way iproute2's
//! `ip netns add` and `ip netns del` make and remove them, so that `ip netns` and the CNI
//! plugins see the same thing: an empty file under `/run/netns` onto which the namespace is
//! bind-mounted, with `/run/netns` a shared mount so that the bind reaches mount namespaces
//! made later. The namespace's `lo` is brought up here too (one rtnetlink request). A pod
//! network costs two programs fewer this way (`ip netns add`, `ip -n … link set lo up`).
//!
//! A new network namespace is entered by the thread that makes it (`unshare(CLONE_NEWNET)`
//! moves only the calling thread). So the work is done on a short-lived thread of its own,
//! never on a runtime's pooled thread, which would stay in the pod's namespace afterwards.

use std::io;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountPropagationFlags, UnmountFlags};
use rustix::net::{AddressFamily, SendFlags, SocketType, netlink::SocketAddrNetlink};

/// rtnetlink's "new link" request (which also changes a link's flags).
const RTM_NEWLINK: u16 = 16;
/// `NLM_F_REQUEST | NLM_F_ACK`.
const REQUEST_WITH_ACK: u16 = 1 | 4;
/// The answer type that carries an error code (0: done).
const NLMSG_ERROR: u16 = 2;
/// `IFF_UP`.
const IFF_UP: u32 = 1;

/// Makes the network namespace `dir/name` with its `lo` up. Fails with `AlreadyExists` when
/// the name is taken. Blocking: a few system calls and a thread's start and end.
pub fn add(dir: &Path, name: &str) -> io::Result<()> {
    share(dir)?;
    let path = dir.join(name);
    // The mount point: an empty file, as iproute2 makes it.
    drop(rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    let made = path.clone();
    let result = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || -> io::Result<()> {
            super::entry::unshare_network()?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", &made)?;
            loopback_up()
        })?
        .join()
        .unwrap_or_else(|_| {
            Err(io::Error::other(
                "the thread making a network namespace panicked",
            ))
        });
    if let Err(e) = result {
        if let Err(cleanup) = remove_path(&path) {
            tracing::warn!(netns = %path.display(), error = %cleanup, "a half-made network namespace could not be removed");
        }
        return Err(io::Error::new(
            e.kind(),
            format!("making the network namespace {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// Removes the network namespace `dir/name` (its mount and its file); the namespace itself
/// ends once no process is in it. A name that does not exist is not an error.
pub fn remove(dir: &Path, name: &str) -> io::Result<()> {
    remove_path(&dir.join(name))
}

fn remove_path(path: &Path) -> io::Result<()> {
    match rustix::mount::unmount(path, UnmountFlags::DETACH) {
        // EINVAL: not a mount point (a file left by a failed add); ENOENT: gone already.
        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes `dir` a mount point with shared propagation (binding it onto itself the first time),
/// so that a namespace's bind mount under it is seen by every mount namespace, as iproute2
/// does before each `ip netns add`.
fn share(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let shared = MountPropagationFlags::SHARED | MountPropagationFlags::REC;
    match rustix::mount::mount_change(dir, shared) {
        Ok(()) => Ok(()),
        // Not a mount point yet.
        Err(Errno::INVAL) => {
            rustix::mount::mount_bind_recursive(dir, dir)?;
            rustix::mount::mount_change(dir, shared).map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}

/// Brings up `lo` of the calling thread's network namespace through rtnetlink.
fn loopback_up() -> io::Result<()> {
    let inet = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    let index = rustix::net::netdevice::name_to_index(&inet, "lo")?;
    let route = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)?;
    let request = set_flags_request(index, IFF_UP, IFF_UP);
    rustix::net::sendto(
        &route,
        &request,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    let mut answer = [0u8; 512];
    let (read, _) = rustix::net::recv(&route, &mut answer, rustix::net::RecvFlags::empty())?;
    ack_code(&answer[..read.min(answer.len())])
}

/// An `RTM_NEWLINK` request (`nlmsghdr` then `ifinfomsg`, host byte order) that sets the
/// `change` bits of link `index`'s flags to those of `flags`, asking for an acknowledgement.
fn set_flags_request(index: u32, flags: u32, change: u32) -> [u8; 32] {
    let mut request = [0u8; 32];
    request[0..4].copy_from_slice(&32u32.to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
    request[6..8].copy_from_slice(&REQUEST_WITH_ACK.to_ne_bytes());
    request[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence number
    // 12..16: port id 0 (the kernel assigns it); 16: AF_UNSPEC; 17: padding; 18..20: type 0.
    request[20..24].copy_from_slice(&index.to_ne_bytes());
    request[24..28].copy_from_slice(&flags.to_ne_bytes());
    request[28..32].copy_from_slice(&change.to_ne_bytes());
    request
}

/// The two bytes at `at`, in host byte order (`None` past the end).
fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// The four bytes at `at`, in host byte order (`None` past the end).
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The outcome an rtnetlink acknowledgement carries: `NLMSG_ERROR` with code 0 is success,
/// a negative code is the errno of the failure.
fn ack_code(answer: &[u8]) -> io::Result<()> {
    // The error code is a signed 32-bit field after the 16-byte header.
    match (u16_at(answer, 4), u32_at(answer, 16).map(|c| c as i32)) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(code)) => Err(io::Error::from_raw_os_error(-code)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "an rtnetlink answer of {} bytes is not an acknowledgement",
                answer.len()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_an_rtnetlink_set_flags_message() {
        let request = set_flags_request(1, IFF_UP, IFF_UP);
        // Length, type RTM_NEWLINK, flags REQUEST|ACK; link 1, flags and change mask IFF_UP.
        assert_eq!(u32_at(&request, 0), Some(32));
        assert_eq!(u16_at(&request, 4), Some(16));
        assert_eq!(u16_at(&request, 6), Some(5));
        assert_eq!(u32_at(&request, 20), Some(1));
        assert_eq!(u32_at(&request, 24), Some(1));
        assert_eq!(u32_at(&request, 28), Some(1));
        assert_eq!(u32_at(&request, 30), None);
    }

    #[test]
    fn acknowledgements_are_read_as_errno() {
        let mut answer = [0u8; 36];
        answer[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(ack_code(&answer).is_ok());
        answer[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        let error = ack_code(&answer).expect_err("an error code");
        assert_eq!(error.raw_os_error(), Some(1));
        assert_eq!(
            ack_code(&answer[..8]).expect_err("too short").kind(),
            io::ErrorKind::InvalidData
        );
    }

    /// As root: a namespace made here is one `ip netns` lists, its `lo` is up, and it is gone
    /// after `remove` (run by CI as root; elsewhere there is nothing to make it with).
    #[test]
    fn a_namespace_is_made_with_lo_up_and_removed() {
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            return;
        }
        let dir = Path::new("/run/netns");
        let name = format!("ferry-test-{}", std::process::id());
        add(dir, &name).expect("made");
        let shown = std::process::Command::new(super::super::network::ip_program())
            .args(["-n", &name, "-o", "link", "show", "lo"])
            .output()
            .expect("ip runs");
        let again = add(dir, &name).expect_err("the name is taken");
        remove(dir, &name).expect("removed");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.status.success(),
            "{}",
            String::from_utf8_lossy(&shown.stderr)
        );
        assert!(text.contains("<LOOPBACK,UP,LOWER_UP>"), "{text}");
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.join(&name).exists());
        remove(dir, &name).expect("removing again is not an error");
    }
}
