//! The chunked transfer coding (RFC 9112 §7.1), scanned as it passes through: the fast
//! path forwards a chunked body unchanged and only needs to know where it ends, and to
//! refuse one it cannot frame; a response relayed into HTTP/2 is decoded into its data.

use std::ops::Range;

/// Where the scanner is in a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: the size so far and how many hex digits it had.
    Size {
        size: u64,
        digits: u8,
    },
    /// In a chunk extension, up to the line's CR.
    Extension {
        size: u64,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    /// In chunk data, this many bytes left.
    Data(u64),
    /// After chunk data: its CR, then its LF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// In a trailer field line.
    TrailerLine,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final CR.
    EndLf,
    /// The body is over.
    Done,
}

/// A chunked body that cannot be framed.
#[derive(Debug, thiserror::Error)]
#[error("malformed chunked body")]
pub struct Malformed;

/// Follows one chunked body.
#[derive(Debug)]
pub struct Chunked {
    state: State,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size { size: 0, digits: 0 },
        }
    }
}

impl Chunked {
    /// True once the last chunk and the trailers have passed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `bytes`, the body's next bytes; returns how many of them belong to the body
    /// (all of them, unless it ends inside).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, Malformed> {
        let mut used = 0;
        while used < bytes.len() && !self.is_done() {
            used += self.decode(&bytes[used..])?.0;
        }
        Ok(used)
    }

    /// Decodes the body's next `bytes` up to the end of the first run of chunk data in
    /// them: returns how many bytes were used and where that data is among them (an
    /// empty range when they held only the coding's own bytes).
    pub fn decode(&mut self, bytes: &[u8]) -> Result<(usize, Range<usize>), Malformed> {
        let mut i = 0;
        while i < bytes.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let take = left.min((bytes.len() - i) as u64);
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data(left - take)
                };
                let end = i + take as usize;
                return Ok((end, i..end));
            }
            self.state = self.step(bytes[i])?;
            i += 1;
        }
        Ok((i, i..i))
    }

    fn step(&self, b: u8) -> Result<State, Malformed> {
        Ok(match (self.state, b) {
            (State::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                if digits >= 15 {
                    return Err(Malformed);
                }
                let d = (b as char).to_digit(16).ok_or(Malformed)?;
                State::Size {
                    size: size * 16 + u64::from(d),
                    digits: digits + 1,
                }
            }
            (State::Size { size, digits }, b';' | b' ' | b'\t') if digits > 0 => {
                State::Extension { size }
            }
            (State::Size { size, digits }, b'\r') if digits > 0 => State::SizeLf { size },
            (State::Extension { size }, b'\r') => State::SizeLf { size },
            (State::Extension { .. }, b'\n') => return Err(Malformed),
            (State::Extension { size }, _) => State::Extension { size },
            (State::SizeLf { size: 0 }, b'\n') => State::TrailerStart,
            (State::SizeLf { size }, b'\n') => State::Data(size),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { size: 0, digits: 0 },
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerLine, b'\n') => return Err(Malformed),
            (State::TrailerLine, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            _ => return Err(Malformed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> Result<(usize, bool), Malformed> {
        let mut c = Chunked::default();
        let mut used = 0;
        for p in parts {
            used += c.feed(p)?;
        }
        Ok((used, c.is_done()))
    }

    #[test]
    fn finds_the_end_across_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(scan(&[a, b]).unwrap(), (body.len(), true), "cut at {cut}");
        }
        // Bytes after the end are not the body's.
        let mut more = body.to_vec();
        more.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(scan(&[&more]).unwrap(), (body.len(), true));
        assert_eq!(scan(&[b"0\r\n\r\n"]).unwrap(), (5, true));
        assert_eq!(scan(&[b"3\r\nab"]).unwrap(), (5, false));
    }

    #[test]
    fn decodes_the_data_across_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        for cut in 0..body.len() {
            let mut c = Chunked::default();
            let mut data = Vec::new();
            for part in [&body[..cut], &body[cut..]] {
                let mut used = 0;
                while used < part.len() && !c.is_done() {
                    let (n, range) = c.decode(&part[used..]).unwrap();
                    data.extend_from_slice(&part[used..][range]);
                    used += n;
                }
            }
            assert!(c.is_done(), "cut at {cut}");
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "cut at {cut}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"1234567890abcdef0\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n",
        ] {
            assert!(scan(&[bad]).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
