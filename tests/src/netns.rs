//! Network namespaces the tests make themselves (root only): hosts with their own
//! addresses on one bridge, programs started inside them, and calls made from inside them
//! by a thread that enters the namespace. Everything is deleted when dropped.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

/// One network namespace, deleted (with its interfaces) when dropped.
pub struct Netns {
    /// Its name (`ip netns` list).
    pub name: String,
}

/// True when this process may create namespaces and the `ip` tool is there (tried with a
/// namespace made and deleted at once).
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let probe = format!("hf-probe-{}", std::process::id());
    let ip_ok = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    root && ip_ok(&["netns", "add", &probe]) && ip_ok(&["netns", "delete", &probe])
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Creates namespace `name` with its loopback up (an old one of that name, left by a
    /// killed run, is removed first).
    pub fn create(name: &str) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "delete", name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Netns {
            name: name.to_string(),
        }
    }

    /// Runs `ip -n <name> <args>` and checks it succeeded.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// The output of `ip -n <name> <args>`.
    pub fn ip_output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` replaces
    /// itself with the program: the child's pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread inside the namespace: sockets it opens live there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("thread in a namespace panicked")
    }

    /// Joins this namespace to bridge `br0` of `hub` with a veth pair: `eth0` here (with
    /// `addr`, a CIDR), `port` on the hub's side.
    pub fn plug(&self, hub: &Netns, port: &str, addr: &str) {
        hub.ip(&[
            "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &self.name,
        ]);
        hub.ip(&["link", "set", port, "master", "br0", "up"]);
        self.ip(&["addr", "add", addr, "dev", "eth0"]);
        self.ip(&["link", "set", "eth0", "up"]);
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &str) {
    let file = File::open(path).expect("open the namespace");
    // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A process started inside a namespace, killed (by its pid) when dropped.
pub struct NsProc {
    /// What it is, for messages.
    pub what: String,
    child: Option<Child>,
}

impl NsProc {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(what: &str, mut command: Command, log: &std::path::Path) -> NsProc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let child = command
            .stdout(Stdio::from(file.try_clone().expect("dup log")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        NsProc {
            what: what.to_string(),
            child: Some(child),
        }
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to it.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NsProc {
    /// SIGTERM first (keepalived then stops and reaps its own VRRP child and gives the
    /// address up), SIGKILL after two seconds.
    fn drop(&mut self) {
        self.signal("-CONT");
        self.signal("-TERM");
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(2) {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.kill();
    }
}
