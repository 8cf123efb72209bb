//! gzip (RFC 1952) compression shared by the gzip codecs (`jsonl-gzip`, `msgpack-gzip`), so
//! each plugin only says what it compresses. Output is a plain single-member gzip file: `zcat`
//! and every gzip library read it. Enabled by the `gzip` feature.

use std::io::{Read, Write};

use flate2::{Compression, read::MultiGzDecoder, write::GzEncoder};

use crate::{Error, OptionSpec, Options, Result};

/// The option spec of a gzip `level`, for a codec's `describe`.
pub fn level_option() -> OptionSpec {
    OptionSpec::new(
        "level",
        "integer 0..=9",
        "6",
        "gzip compression level (0 = store, 9 = smallest)",
    )
}

/// The `level` option (see [`level_option`]).
pub fn level(opts: &Options) -> Result<u32> {
    Ok(opts.int("level", 0, 9, 6)? as u32)
}

/// Compresses `data` at `level` (0..=9).
pub fn compress(data: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut gz = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        Compression::new(level),
    );
    gz.write_all(data)
        .and_then(|()| gz.finish())
        .map_err(|e| Error::Internal(format!("gzip: {e}")))
}

/// Decompresses gzip data (all members, as `zcat` does). Anything that is not complete gzip
/// data, including a trailing fragment, is `CorruptInput`.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4));
    MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| Error::corrupt(format!("gzip: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let data = b"hello hello hello hello".repeat(50);
        let gz = compress(&data, 6).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        assert!(gz.len() < data.len());
        assert_eq!(decompress(&gz).unwrap(), data);
        for cut in [0, 1, 10, gz.len() / 2, gz.len() - 1] {
            assert!(
                matches!(decompress(&gz[..cut]), Err(Error::CorruptInput(_))),
                "cut at {cut}"
            );
        }
        assert!(decompress(b"not gzip at all").is_err());
    }

    #[test]
    fn level_option_is_checked() {
        assert_eq!(level(&Options::default()).unwrap(), 6);
        assert_eq!(level(&Options::from_pairs([("level", "0")])).unwrap(), 0);
        assert!(level(&Options::from_pairs([("level", "10")])).is_err());
    }
}
