//! Running the `ferry` binary in a test: a server process that says where it listens on its
//! first line of output, killed when dropped, and a kubectl pointed at it through a kubeconfig
//! of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `ferry` server (`apiserver`, `up`, ...), killed when dropped.
#[derive(Debug)]
pub struct FerryProcess {
    child: Child,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The URL it serves the API at.
    pub url: String,
    /// The first line it printed (where it listens, and what it follows).
    pub startup_line: String,
}

/// How long a server may take to say where it listens.
const STARTUP: Duration = Duration::from_secs(60);

fn spawn(binary: &Path, args: &[String], env: &[(String, String)]) -> (Child, String, String) {
    let mut child = Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ferry starts");
    let stdout = child.stdout.take().expect("stdout");
    // The first line says where it listens; read it with a deadline, on a thread of its own.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line).map(|_| line);
        if tx.send(read).is_err() {
            return;
        }
        // Keep draining so the server never blocks on a full pipe.
        let mut sink = Vec::new();
        if reader.read_to_end(&mut sink).is_err() {
            // The server went away: nothing more to read.
        }
    });
    let line = match rx.recv_timeout(STARTUP) {
        Ok(Ok(line)) => line,
        other => {
            if let Err(e) = child.kill() {
                eprintln!("killing a ferry that did not start: {e}");
            }
            panic!("ferry {args:?} did not say where it listens: {other:?}");
        }
    };
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url, line)
}

impl FerryProcess {
    /// Starts `binary args... --listen 127.0.0.1:0` and waits until it says where it listens.
    pub fn start(binary: &Path, args: &[String]) -> FerryProcess {
        FerryProcess::start_with_env(binary, args, &[])
    }

    /// [`FerryProcess::start`] with extra environment variables.
    pub fn start_with_env(
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> FerryProcess {
        let mut args = args.to_vec();
        if !args.iter().any(|a| a == "--listen") {
            args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        let (child, url, startup_line) = spawn(binary, &args, env);
        FerryProcess {
            child,
            binary: binary.to_path_buf(),
            args,
            env: env.to_vec(),
            url,
            startup_line,
        }
    }

    /// The arguments it was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server has exited, without waiting.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }

    /// Kills the server at once (SIGKILL) and starts it again on the same port and database.
    pub fn crash_and_restart(&mut self) {
        let (args, env) = (self.args.clone(), self.env.clone());
        self.crash_and_restart_as(args, env);
    }

    /// Kills the server at once (SIGKILL) and starts `args` (with `env`) in its place, on the
    /// same port: another command on the same data, or the same one without a fault point.
    pub fn crash_and_restart_as(&mut self, args: Vec<String>, env: Vec<(String, String)>) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
        let listen = self.url.trim_start_matches("http://").to_owned();
        let mut args = args;
        match args.iter().position(|a| a == "--listen") {
            Some(i) => args[i + 1] = listen,
            None => args.extend(["--listen".to_owned(), listen]),
        }
        let (child, url, line) = spawn(&self.binary, &args, &env);
        self.child = child;
        self.args = args;
        self.env = env;
        self.startup_line = line;
        assert_eq!(url, self.url);
    }
}

impl FerryProcess {
    /// Stops the server as an operator would (SIGTERM), so that what it started (a process
    /// node's pods, their network namespaces) goes with it; SIGKILL if it takes over 20 s.
    pub fn terminate(&mut self) {
        if sigterm_and_wait(&mut self.child, Duration::from_secs(20)) {
            return;
        }
        eprintln!("ferry did not stop within 20 s of SIGTERM; killing it");
    }
}

impl Drop for FerryProcess {
    fn drop(&mut self) {
        // Gracefully first: a test that failed midway still leaves no pods behind.
        self.terminate();
        if let Err(e) = self.child.kill() {
            eprintln!("stopping ferry: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("reaping ferry: {e}");
        }
    }
}

/// kubectl with a kubeconfig for one server.
#[derive(Debug)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

/// Output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Kubectl {
    /// Writes a kubeconfig for `url` (with `ferry kubeconfig`) into `dir`.
    pub fn new(kubectl: &Path, ferry: &Path, url: &str, dir: &Path) -> Kubectl {
        let kubeconfig = dir.join("kubeconfig");
        let config = Command::new(ferry)
            .args(["kubeconfig", "--server", url])
            .output()
            .expect("ferry kubeconfig");
        assert!(config.status.success(), "{}", text(&config.stderr));
        std::fs::write(&kubeconfig, config.stdout).expect("write kubeconfig");
        Kubectl {
            binary: kubectl.to_path_buf(),
            kubeconfig,
        }
    }

    /// The kubeconfig's path (for other clients).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubectl command with the kubeconfig set, for what the helpers do not cover.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// Runs kubectl.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl with `input` on its stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        child.wait_with_output().expect("kubectl exits")
    }

    /// Runs kubectl and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `kubectl get <target...> -o jsonpath=<path>`, expected to succeed; returns stdout.
    pub fn jsonpath(&self, target: &[&str], path: &str) -> String {
        let output = format!("jsonpath={path}");
        let mut args = vec!["get"];
        args.extend_from_slice(target);
        args.extend(["-o", output.as_str()]);
        self.ok(&args)
    }

    /// Runs kubectl with stdin and expects success; returns stdout.
    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.run_stdin(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs kubectl with stdin and expects failure; returns stderr.
    pub fn fails_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.run_stdin(args, input);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// Runs kubectl and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// Starts a long-running kubectl (a watch) with its output read on a thread.
    pub fn watch(&self, args: &[&str]) -> Watching {
        self.watch_env(args, &[])
    }

    /// [`Kubectl::watch`] with more environment variables (`KUBECTL_*` switches).
    pub fn watch_env(&self, args: &[&str], env: &[(&str, &str)]) -> Watching {
        let mut child = Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            // Its complaints (an object not found, a dropped connection) go to the test's
            // output, where a failure is read.
            .stderr(Stdio::inherit())
            .spawn()
            .expect("watch starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watching {
            child,
            lines,
            seen: Vec::new(),
        }
    }
}

/// A running `kubectl get -w`: its lines as they come.
#[derive(Debug)]
pub struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Watching {
    /// Waits until a line satisfies `want` (failing after `within`); returns it.
    pub fn until(&mut self, within: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the watch did not print the line wanted; it printed {:#?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("stopping a watch: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("reaping a watch: {e}");
        }
    }
}

/// A `ferry` process that serves nothing of its own (`ferry node`, `ferry controller`), with
/// its stderr kept in a file; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Background {
    child: Child,
    log: PathBuf,
}

impl Background {
    /// Starts `binary args...`, its stderr written to `log`.
    pub fn start(binary: &Path, args: &[&str], log: &Path) -> Background {
        let file = std::fs::File::create(log).expect("log file");
        let child = Command::new(binary)
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("ferry starts");
        Background {
            child,
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("killing ferry: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("reaping ferry: {e}");
        }
    }

    /// SIGTERM (a `ferry node` then stops its pods' processes), and wait; SIGKILL when it
    /// takes over 20 s.
    pub fn terminate(&mut self) {
        if !sigterm_and_wait(&mut self.child, Duration::from_secs(20)) {
            eprintln!("ferry did not stop within 20 s of SIGTERM; killing it");
            self.kill();
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // As an operator stops it: a `ferry node` of real processes takes them with it (a
        // test that kills one on purpose calls `kill` itself).
        self.terminate();
    }
}

/// Sends SIGTERM to `child` and waits up to `within` for it to exit; whether it did.
pub(crate) fn sigterm_and_wait(child: &mut Child, within: Duration) -> bool {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return true;
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if let Err(e) = term {
        eprintln!("signalling ferry: {e}");
    }
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `within` naming `what`.
pub fn wait_for<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
