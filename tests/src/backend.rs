//! Real `holdfast backend` processes (they answer their name and set `PHPSESSID`) for the
//! data-plane tests, and a raw HTTP/1.1 client with a cookie jar that sends exactly the
//! bytes a test asks for (custom Host, cookies, oversized or slow heads).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http::dechunk;
use crate::{free_port, holdfast_binary, wait_for};

/// One `holdfast backend` process on loopback.
pub struct BackendProc {
    /// The name it answers with.
    pub name: String,
    /// Its address.
    pub addr: String,
    log: PathBuf,
    child: Option<Child>,
}

impl BackendProc {
    /// Starts backend `name` on a free port, logging into `dir`, and waits until it answers.
    pub fn start(name: &str, dir: &std::path::Path) -> BackendProc {
        let mut b = BackendProc {
            name: name.to_string(),
            addr: format!("127.0.0.1:{}", free_port()),
            log: dir.join(format!("backend-{name}.log")),
            child: None,
        };
        b.spawn();
        b
    }

    /// (Re)starts the process on the same address and waits until it answers.
    pub fn spawn(&mut self) {
        self.kill();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open backend log");
        let child = Command::new(holdfast_binary())
            .args(["backend", "--listen", &self.addr, "--name", &self.name])
            .stdout(Stdio::from(log.try_clone().expect("dup log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn holdfast backend");
        self.child = Some(child);
        let addr = self.addr.clone();
        wait_for(
            &format!("backend {} to answer", self.name),
            Duration::from_secs(20),
            || get(&addr, "x", "/", &[]).ok().filter(|a| a.status == 200),
        );
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for BackendProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response read by [`get`].
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header fields, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: String,
}

impl Answer {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends `GET path` with `Host: host` and `extra` header lines, `Connection: close`.
pub fn get(addr: &str, host: &str, path: &str, extra: &[(&str, &str)]) -> std::io::Result<Answer> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    raw(addr, head.as_bytes())
}

/// Sends `bytes` as they are and reads the whole answer (until the server closes).
pub fn raw(addr: &str, bytes: &[u8]) -> std::io::Result<Answer> {
    raw_within(addr, bytes, Duration::from_secs(30))
}

/// [`raw`], giving up on connecting or reading after `limit`.
pub fn raw_within(addr: &str, bytes: &[u8], limit: Duration) -> std::io::Result<Answer> {
    let mut stream = match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => TcpStream::connect_timeout(&a, limit)?,
        Err(_) => TcpStream::connect(addr)?,
    };
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(bytes)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    parse(&buf)
}

/// An answer read off the wire, parsed.
pub(crate) fn parse(buf: &[u8]) -> std::io::Result<Answer> {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A cookie jar for one simulated client.
#[derive(Clone, Debug, Default)]
pub struct Jar {
    /// Cookie name → value.
    pub cookies: BTreeMap<String, String>,
}

impl Jar {
    /// Stores every `Set-Cookie` of `answer`.
    pub fn update(&mut self, answer: &Answer) {
        for sc in answer.all("set-cookie") {
            if let Some((n, v)) = sc.split(';').next().and_then(|p| p.split_once('=')) {
                self.cookies
                    .insert(n.trim().to_string(), v.trim().to_string());
            }
        }
    }

    /// The `Cookie` header value, if any cookie is held.
    pub fn header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// `GET /` through `addr` with this jar, storing what the server sets.
    pub fn get(&mut self, addr: &str, host: &str) -> std::io::Result<Answer> {
        self.get_within(addr, host, Duration::from_secs(30))
    }

    /// [`Jar::get`], giving up on connecting or reading after `limit`.
    pub fn get_within(
        &mut self,
        addr: &str,
        host: &str,
        limit: Duration,
    ) -> std::io::Result<Answer> {
        let mut head = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        if let Some(cookie) = self.header() {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        head.push_str("\r\n");
        let answer = raw_within(addr, head.as_bytes(), limit)?;
        self.update(&answer);
        Ok(answer)
    }
}
