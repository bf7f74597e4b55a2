//! A binding's key, stored inline in its slot when it is short (session ids and client
//! addresses are 4–38 bytes), so a binding costs no separate allocation.

/// Keys up to this many bytes live inside the slot.
const INLINE: usize = 38;

/// A persistence key: inline up to [`INLINE`] bytes, on the heap beyond (40 bytes either
/// way in the slot).
#[derive(Clone, Debug)]
pub(crate) enum Key {
    /// Short keys: the length and the bytes.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// Long keys.
    Heap(Box<[u8]>),
}

impl Key {
    /// Stores `key`.
    pub(crate) fn new(key: &[u8]) -> Key {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(Box::from(key))
        }
    }

    /// The key's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl Default for Key {
    fn default() -> Key {
        Key::new(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys_round_trip_in_forty_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 40);
        for len in [0, 1, 20, 32, INLINE, INLINE + 1, 200] {
            let k: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(Key::new(&k).as_bytes(), &k[..], "length {len}");
        }
        assert!(matches!(Key::new(&[7; INLINE]), Key::Inline { .. }));
        assert!(matches!(Key::new(&[7; INLINE + 1]), Key::Heap(_)));
    }
}
