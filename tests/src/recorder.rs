//! A raw HTTP/1.1 server for conformance tests: it records the exact bytes of every
//! request the proxy sends it (head and body, keep-alive connections included) and
//! answers each with the same configured bytes. Runs in a thread of the test process on
//! a loopback port; stops when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The head, request line to the blank line included, as bytes.
    pub head: Vec<u8>,
    /// The body bytes as framed on the wire (chunk sizes included).
    pub body: Vec<u8>,
}

impl Received {
    /// The head as text.
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    /// The header fields, names lower-cased, values trimmed, in order.
    pub fn fields(&self) -> Vec<(String, String)> {
        self.head_text()
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect()
    }

    /// Every value of field `name` (lower case).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect()
    }
}

/// The recording server.
pub struct Recorder {
    /// Its `host:port`.
    pub addr: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    /// Starts a server answering every request with `response` (a whole HTTP/1.1
    /// response, head and body).
    pub fn start(response: &[u8]) -> Recorder {
        // A port found free can be taken before it is bound again: try a few.
        let listener = (0..8)
            .find_map(|_| TcpListener::bind(("127.0.0.1", crate::free_port())).ok())
            .expect("bind recorder");
        let addr = listener.local_addr().expect("recorder address").to_string();
        listener.set_nonblocking(true).expect("nonblocking");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, response) = (received.clone(), stop.clone(), response.to_vec());
        std::thread::spawn(move || accept(listener, r, s, response));
        Recorder {
            addr,
            received,
            stop,
        }
    }

    /// What was received so far, and forgets it.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().expect("recorder lock"))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn accept(
    listener: TcpListener,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    response: Vec<u8>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (r, resp) = (received.clone(), response.clone());
                std::thread::spawn(move || serve(stream, r, resp));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Serves one connection's requests until it closes (30 s idle at most).
fn serve(mut stream: TcpStream, received: Arc<Mutex<Vec<Received>>>, response: Vec<u8>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buf) {
        received.lock().expect("recorder lock").push(request);
        if stream.write_all(&response).is_err() {
            return;
        }
    }
}

/// Reads one request (head, then a body by `Content-Length` or chunked) from `buf` and
/// the stream; `None` when the connection ends first.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf)?;
    };
    let head: Vec<u8> = buf.drain(..end).collect();
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("content-length:"))
        .find_map(|v| v.trim().parse::<usize>().ok());
    let body = if text.contains("\r\ntransfer-encoding:") && text.contains("chunked") {
        // The last chunk (`0` at the start of a line), then trailer lines up to an empty
        // one.
        loop {
            let last = find(buf, b"0\r\n").filter(|i| *i == 0 || buf[i - 1] == b'\n');
            if let Some(end) = last.and_then(|i| Some(i + 1 + find(&buf[i + 1..], b"\r\n\r\n")?)) {
                break buf.drain(..end + 4).collect();
            }
            fill(stream, buf)?;
        }
    } else {
        let n = length.unwrap_or(0);
        while buf.len() < n {
            fill(stream, buf)?;
        }
        buf.drain(..n).collect()
    };
    Some(Received { head, body })
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
