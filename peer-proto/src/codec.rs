//! The one place where peer messages are turned into bytes and back: bincode 2 (serde API,
//! `config::standard()`), always decoded with a byte limit so that a hostile length field
//! inside a payload can never make the decoder allocate unboundedly.

use bincode::config::{self, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How many bytes of decoded in-memory containers one payload byte may claim.
///
/// bincode charges `len * size_of::<T>()` for a container before decoding it, so a small
/// wire payload (varint-packed structs) legitimately claims more than its own size.
const EXPANSION: usize = 16;

/// Smallest decode budget, whatever the payload size.
const MIN_BUDGET: usize = 1 << 20;

/// Error turning a message into bytes or bytes into a message.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be serialized.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The bytes are not a valid message (garbage, truncated, or over the decode budget).
    #[error("cannot decode message: {0}")]
    Decode(String),
    /// The payload holds a valid message followed by unexpected bytes.
    #[error("cannot decode message: {trailing} trailing bytes")]
    TrailingBytes {
        /// Number of bytes left after the message.
        trailing: usize,
    },
}

/// Serializes `value` into a fresh buffer.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config::standard())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Serializes `value`, appending it to `buf` (used to build a frame in place).
pub fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, buf, config::standard())
        .map(|_| ())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Deserializes exactly one `T` from `bytes`; trailing bytes are an error.
///
/// The decode limit scales with the payload size (see `EXPANSION`), so the memory a
/// payload can make the decoder reserve is bounded by a small multiple of its length.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let budget = bytes.len().saturating_mul(EXPANSION).max(MIN_BUDGET);
    let (value, read) = if budget <= 1 << 20 {
        decode_with(bytes, config::standard().with_limit::<{ 1 << 20 }>())?
    } else if budget <= 1 << 24 {
        decode_with(bytes, config::standard().with_limit::<{ 1 << 24 }>())?
    } else if budget <= 1 << 28 {
        decode_with(bytes, config::standard().with_limit::<{ 1 << 28 }>())?
    } else {
        decode_with(bytes, config::standard().with_limit::<{ 1 << 30 }>())?
    };
    match bytes.len() - read {
        0 => Ok(value),
        trailing => Err(CodecError::TrailingBytes { trailing }),
    }
}

fn decode_with<T: DeserializeOwned, Cfg: Config>(
    bytes: &[u8],
    cfg: Cfg,
) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, cfg).map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing() {
        let v = (7u64, String::from("x"), vec![1u8, 2, 3]);
        let mut bytes = encode(&v).expect("encode");
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&bytes).expect("decode"), v);
        bytes.push(0);
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(&bytes),
            Err(CodecError::TrailingBytes { trailing: 1 })
        ));
    }

    #[test]
    fn huge_claimed_length_is_refused_without_allocating() {
        // varint 0xFD marker + u64 length of 2^40 bytes, then nothing.
        let mut bytes = vec![0xFD];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(CodecError::Decode(_))
        ));
        assert!(matches!(
            decode::<String>(&bytes),
            Err(CodecError::Decode(_))
        ));
        assert!(matches!(
            decode::<Vec<(u64, u64)>>(&bytes),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..512usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            let _ = decode::<(String, Vec<Vec<u8>>, Option<u64>)>(&bytes);
        }
    }
}
