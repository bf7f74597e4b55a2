//! The HPACK decoder (RFC 7541): header blocks into fields, with the dynamic table
//! the client fills. Each table entry keeps its field already checked and made into
//! `http` types, so a field sent by index (most of every request after the first)
//! costs a reference count, not a copy, a parse or an allocation.

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::Bytes;

use super::huffman;
use super::request::Field;

/// Why a header block cannot be decoded: a COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// The static table (RFC 7541 Appendix A).
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// One table entry: the field as sent, and as the request takes it.
#[derive(Clone, Debug)]
pub struct Entry {
    name: Bytes,
    value: Bytes,
    /// The field checked and converted.
    pub field: Field,
}

impl Entry {
    fn new(name: Bytes, value: Bytes) -> Entry {
        let field = Field::of(&name, &value);
        Entry { name, value, field }
    }

    /// Its size as the table counts it (RFC 7541 §4.1), which is also how
    /// SETTINGS_MAX_HEADER_LIST_SIZE counts (RFC 9113 §6.5.2).
    pub fn size(&self) -> usize {
        self.name.len() + self.value.len() + 32
    }
}

fn static_entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let entry = |(n, v): &(&'static str, &'static str)| {
            Entry::new(
                Bytes::from_static(n.as_bytes()),
                Bytes::from_static(v.as_bytes()),
            )
        };
        STATIC.iter().map(entry).collect()
    })
}

/// A connection's decoding context.
pub struct Decoder {
    table: VecDeque<Entry>,
    size: usize,
    max: usize,
    allowed: usize,
    scratch: Vec<u8>,
}

impl Decoder {
    /// A decoder whose table may grow to `allowed` octets (our
    /// SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: allowed,
            allowed,
            scratch: Vec::new(),
        }
    }

    /// Decodes a whole header block, giving each field to `each`.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut each: impl FnMut(&Entry),
    ) -> Result<(), DecodeError> {
        let mut first = true;
        while let Some(&byte) = block.first() {
            if byte & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                each(self.entry(index)?);
            } else if byte & 0xc0 == 0x40 {
                let entry = self.literal(&mut block, 6)?;
                each(&entry);
                self.insert(entry);
            } else if byte & 0xe0 == 0x20 {
                // RFC 7541 §4.2: only at the start of a block.
                if !first {
                    return Err(DecodeError("a table size update after a field"));
                }
                let max = integer(&mut block, 5)?;
                if max > self.allowed {
                    return Err(DecodeError("a table size over SETTINGS_HEADER_TABLE_SIZE"));
                }
                self.max = max;
                self.evict(0);
                continue;
            } else {
                let entry = self.literal(&mut block, 4)?;
                each(&entry);
            }
            first = false;
        }
        Ok(())
    }

    fn entry(&self, index: usize) -> Result<&Entry, DecodeError> {
        let found = match index {
            0 => None,
            1..=61 => static_entries().get(index - 1),
            _ => self.table.get(index - 62),
        };
        found.ok_or(DecodeError("an index out of the table"))
    }

    fn literal(&mut self, block: &mut &[u8], prefix: u32) -> Result<Entry, DecodeError> {
        let index = integer(block, prefix)?;
        let name = match index {
            0 => self.string(block)?,
            _ => self.entry(index)?.name.clone(),
        };
        let value = self.string(block)?;
        Ok(Entry::new(name, value))
    }

    fn string(&mut self, block: &mut &[u8]) -> Result<Bytes, DecodeError> {
        let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
        let len = integer(block, 7)?;
        if len > block.len() {
            return Err(DecodeError("a string longer than its block"));
        }
        let (raw, rest) = block.split_at(len);
        *block = rest;
        if !huffman {
            return Ok(Bytes::copy_from_slice(raw));
        }
        self.scratch.clear();
        huffman::decode(raw, &mut self.scratch).map_err(|_| DecodeError("a bad Huffman string"))?;
        Ok(Bytes::copy_from_slice(&self.scratch))
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(entry);
    }

    /// Evicts the oldest entries until `room` more octets fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_back() {
                Some(old) => self.size -= old.size(),
                None => break,
            }
        }
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1), taken from the front of `block`.
fn integer(block: &mut &[u8], n: u32) -> Result<usize, DecodeError> {
    let short = DecodeError("an integer cut short");
    let (&first, mut rest) = block.split_first().ok_or(short)?;
    let max = (1usize << n) - 1;
    let mut value = usize::from(first) & max;
    if value == max {
        let mut shift = 0;
        loop {
            let (&b, more) = rest.split_first().ok_or(short)?;
            rest = more;
            if shift > 21 {
                return Err(DecodeError("an integer too large"));
            }
            value += usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    *block = rest;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(block: &[u8], decoder: &mut Decoder) -> Result<Vec<(String, String)>, DecodeError> {
        let mut out = Vec::new();
        let s = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
        decoder.decode(block, |e| out.push((s(&e.name), s(&e.value))))?;
        Ok(out)
    }

    #[test]
    fn rfc7541_c_4_requests_with_huffman_share_a_table() {
        let mut d = Decoder::new(4096);
        let first = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let got = text(&first, &mut d).unwrap();
        assert_eq!(got[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(d.size, 57);
        let second = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ];
        let got = text(&second, &mut d).unwrap();
        assert_eq!(got[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(got[4], ("cache-control".into(), "no-cache".into()));
        assert_eq!(d.size, 110);
    }

    #[test]
    fn rfc7541_every_static_entry_matches_a_reference_decoder() {
        let mut ours = Decoder::new(4096);
        let mut reference = loona_hpack::Decoder::new();
        for index in 1..=61u8 {
            let block = [0x80 | index];
            let want = reference.decode(&block).unwrap();
            let got = text(&block, &mut ours).unwrap();
            assert_eq!(got[0].0.as_bytes(), &want[0].0[..], "index {index}");
            assert_eq!(got[0].1.as_bytes(), &want[0].1[..], "index {index}");
        }
    }

    #[test]
    fn rfc7541_bad_blocks_are_compression_errors() {
        // Index 0, an index past the table, a size update after a field or over the
        // setting, a string longer than the block, an integer that never ends.
        for block in [
            &[0x80][..],
            &[0xbe],
            &[0x82, 0x20],
            &[0x3f, 0xe2, 0x1f],
            &[0x40, 0x85, b'a'],
            &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            let mut d = Decoder::new(4096);
            assert!(text(block, &mut d).is_err(), "{block:x?}");
        }
        // A size update first is fine, and evicts.
        let mut d = Decoder::new(4096);
        text(&[0x40, 0x01, b'a', 0x01, b'b'], &mut d).unwrap();
        assert_eq!(d.size, 34);
        text(&[0x20, 0x82], &mut d).unwrap();
        assert_eq!(d.size, 0);
    }
}
