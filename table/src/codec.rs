//! The one place the table turns values into bytes and back: bincode 2 (serde path,
//! standard config) behind a format-version byte, for log entries, votes and snapshots
//! on disk. Swapping the codec means changing this file only.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version byte in front of every encoded value. Bump it when the format changes.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input was empty.
    #[error("empty input")]
    Empty,
    /// The version byte is not one this build reads.
    #[error("unsupported format version {0} (this build reads {FORMAT_VERSION})")]
    Version(u8),
    /// The payload is not a valid encoding of the expected type.
    #[error("malformed payload: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    /// The value could not be encoded.
    #[error("encode failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// Largest value decoded (64 MiB): a corrupt length prefix cannot make bincode allocate
/// more than this.
const MAX_DECODE: usize = 64 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE>()
}

/// Encodes `value` with the version byte in front.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

/// Decodes a value written by [`encode`]. Allocation is bounded by the input's length,
/// because bincode rejects lengths that run past the end of the slice.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, payload) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::Version(version));
    }
    let (value, used) = bincode::serde::decode_from_slice(payload, config())?;
    if used != payload.len() {
        return Err(CodecError::Trailing(payload.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let bytes = encode(&(7u64, "x".to_string())).unwrap();
        let back: (u64, String) = decode(&bytes).unwrap();
        assert_eq!(back, (7, "x".to_string()));
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<u64>(&[9, 1]),
            Err(CodecError::Version(9))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode::<(u64, String)>(&long),
            Err(CodecError::Trailing(1))
        ));
        assert!(decode::<(u64, String)>(&bytes[..bytes.len() - 1]).is_err());
    }
}
