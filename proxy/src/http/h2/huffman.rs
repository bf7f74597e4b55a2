//! HPACK's Huffman code (RFC 7541 §5.2, Appendix B): the code is canonical, so the
//! length of each symbol's code is all the table needs; the decoder walks a binary trie
//! built from it once, and holds the padding rules (at most seven bits, all ones, and
//! never the EOS symbol).

use std::sync::OnceLock;

/// The length in bits of each octet's code (RFC 7541 Appendix B); EOS is 30 bits.
const LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];
/// The length of the EOS symbol's code.
const EOS_LENGTH: u8 = 30;
/// The EOS symbol, after the 256 octets.
const EOS: u16 = 256;

/// Why a Huffman-coded string is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol appeared in the string.
    Eos,
    /// The padding is longer than seven bits or not all ones.
    Padding,
}

/// Each symbol's code, assigned canonically: by length, then by symbol.
fn codes() -> [(u32, u8); 257] {
    let length = |s: u16| {
        if s == EOS {
            EOS_LENGTH
        } else {
            LENGTHS[s as usize]
        }
    };
    let mut order: Vec<u16> = (0..=EOS).collect();
    order.sort_by_key(|&s| (length(s), s));
    let mut codes = [(0, 0); 257];
    let (mut code, mut previous) = (0u32, length(order[0]));
    for (i, &s) in order.iter().enumerate() {
        if i > 0 {
            code = (code + 1) << (length(s) - previous);
            previous = length(s);
        }
        codes[s as usize] = (code, length(s));
    }
    codes
}

/// The decoding trie: each node's two children; a child below zero is the leaf of
/// symbol `!child`.
fn trie() -> &'static [[i32; 2]] {
    static TRIE: OnceLock<Vec<[i32; 2]>> = OnceLock::new();
    TRIE.get_or_init(|| {
        let mut nodes = vec![[0i32; 2]];
        for (symbol, (code, len)) in codes().into_iter().enumerate() {
            let mut node = 0usize;
            for bit in (0..len).rev() {
                let b = ((code >> bit) & 1) as usize;
                if bit == 0 {
                    nodes[node][b] = !(symbol as i32);
                } else {
                    if nodes[node][b] == 0 {
                        nodes.push([0, 0]);
                        nodes[node][b] = (nodes.len() - 1) as i32;
                    }
                    node = nodes[node][b] as usize;
                }
            }
        }
        nodes
    })
}

/// Decodes a Huffman-coded string, appending its octets to `out`.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let trie = trie();
    let (mut node, mut depth, mut ones) = (0usize, 0u32, true);
    for byte in input {
        for shift in (0..8).rev() {
            let bit = (byte >> shift) & 1;
            let next = trie[node][bit as usize];
            depth += 1;
            ones &= bit == 1;
            if next < 0 {
                let symbol = !next as u16;
                if symbol == EOS {
                    return Err(HuffmanError::Eos);
                }
                out.push(symbol as u8);
                (node, depth, ones) = (0, 0, true);
            } else {
                node = next as usize;
            }
        }
    }
    match depth <= 7 && ones {
        true => Ok(()),
        false => Err(HuffmanError::Padding),
    }
}

#[cfg(test)]
pub(super) fn encode(input: &[u8]) -> Vec<u8> {
    let codes = codes();
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0u32);
    for &b in input {
        let (code, len) = codes[b as usize];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c_4_1_the_example_decodes() {
        let coded = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut out = Vec::new();
        decode(&coded, &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
    }

    #[test]
    fn rfc7541_5_2_every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).unwrap();
        assert_eq!(out, all);
    }

    #[test]
    fn rfc7541_5_2_bad_padding_and_eos_are_errors() {
        // "a" is 00011 (5 bits): three padding bits of zeros.
        assert_eq!(
            decode(&[0b0001_1000], &mut Vec::new()),
            Err(HuffmanError::Padding)
        );
        assert_eq!(decode(&[0b0001_1111], &mut Vec::new()), Ok(()));
        // A whole octet of ones after a symbol is padding longer than seven bits.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut Vec::new()),
            Err(HuffmanError::Padding)
        );
        // EOS: thirty ones.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(HuffmanError::Eos)
        );
    }
}
