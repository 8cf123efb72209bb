//! Bit and byte I/O for the format: a raw bit stream (LSB-first, the residual bits every column
//! writes next to its entropy-coded symbols), LEB128 varints and a bounds-checked byte cursor.
//!
//! The hot loops read and write a few bits per value: the writer keeps a 64-bit accumulator and
//! moves whole words, the reader loads an 8-byte window at its bit position. The reader never
//! fails mid-stream: past the end it yields zero bits and [`BitReader::finish`] reports the
//! overrun, which keeps the per-value path free of error branches while still turning every
//! truncation into an error.

use strata_plugin_sdk::{Error, Result};

/// Writes bits LSB-first into bytes.
#[derive(Default)]
pub struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    /// Bits pending in `acc`, always `< 32` between calls.
    n: u32,
}

impl BitWriter {
    /// Appends the low `bits` bits of `v` (`bits <= 64`; higher bits of `v` are ignored).
    #[inline(always)]
    pub fn write(&mut self, v: u64, bits: u32) {
        if bits > 32 {
            self.write32(v & 0xFFFF_FFFF, 32);
            self.write32((v >> 32) & mask(bits - 32), bits - 32);
        } else {
            self.write32(v & mask(bits), bits);
        }
    }

    #[inline(always)]
    fn write32(&mut self, v: u64, bits: u32) {
        self.acc |= v << self.n;
        self.n += bits;
        if self.n >= 32 {
            self.buf.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// The bytes written so far, the last one zero-padded.
    pub fn finish(mut self) -> Vec<u8> {
        let bytes = self.n.div_ceil(8) as usize;
        self.buf.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
        self.buf
    }
}

/// `bits` low ones (`bits <= 64`).
#[inline]
pub fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Reads what [`BitWriter`] wrote.
///
/// The reader keeps only a bit position: each read loads the 8 bytes around it and shifts, so
/// the position is the only state carried from value to value (an add), and reading needs no
/// data-dependent branch. Near the end the bytes past the stream read as zero.
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Bits consumed so far (may run past the end of `data`; [`BitReader::finish`] says so).
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    /// The 8 bytes from byte `at`, zero past the end of the stream.
    #[inline(always)]
    fn window(&self, at: usize) -> u64 {
        match self.data.get(at..).and_then(|d| d.first_chunk::<8>()) {
            Some(w) => u64::from_le_bytes(*w),
            None => self.tail(at),
        }
    }

    #[cold]
    fn tail(&self, at: usize) -> u64 {
        let mut w = [0u8; 8];
        let rest = self.data.get(at..).unwrap_or(&[]);
        let n = rest.len().min(8);
        w[..n].copy_from_slice(&rest[..n]);
        u64::from_le_bytes(w)
    }

    /// The next `bits` bits (`bits <= 64`).
    #[inline(always)]
    pub fn read(&mut self, bits: u32) -> u64 {
        if bits <= 56 {
            self.read56(bits)
        } else {
            let lo = self.read56(32);
            lo | self.read56(bits - 32) << 32
        }
    }

    /// The next `bits <= 56` bits: a read starts at most 7 bits into its first byte, so the 8
    /// bytes from there hold them.
    #[inline(always)]
    fn read56(&mut self, bits: u32) -> u64 {
        let v = self.window(self.pos / 8) >> (self.pos % 8);
        self.pos += bits as usize;
        v & ((1 << bits) - 1)
    }

    /// Errors when more bits were read than the stream holds.
    pub fn finish(&self, what: &str) -> Result<()> {
        if self.pos as u64 > (self.data.len() as u64) * 8 {
            return Err(Error::corrupt(format!("{what}: bit stream is truncated")));
        }
        Ok(())
    }
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over untrusted bytes: every read is bounds-checked and names what it was reading.
pub struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub fn new(data: &'a [u8]) -> ByteReader<'a> {
        ByteReader { data, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| Error::corrupt(format!("{what}: unexpected end of input")))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, len: u64, what: &str) -> Result<&'a [u8]> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.remaining())
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "{what}: length {len} exceeds the {} bytes left",
                    self.remaining()
                ))
            })?;
        let s = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    pub fn varint(&mut self, what: &str) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            let low = u64::from(b & 0x7F);
            if shift == 63 && low > 1 {
                break;
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::corrupt(format!("{what}: varint is too long")))
    }

    /// A varint that must be `<= max`.
    pub fn varint_max(&mut self, max: u64, what: &str) -> Result<u64> {
        let v = self.varint(what)?;
        if v > max {
            return Err(Error::corrupt(format!("{what}: {v} is larger than {max}")));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_at_every_width() {
        let mut w = BitWriter::default();
        let vals: Vec<(u64, u32)> = (0..=64u32)
            .flat_map(|b| [(mask(b), b), (0x5555_5555_5555_5555 & mask(b), b)])
            .collect();
        for &(v, b) in &vals {
            w.write(v, b);
        }
        let bytes = w.finish();
        let total: u32 = vals.iter().map(|v| v.1).sum();
        assert_eq!(bytes.len(), total.div_ceil(8) as usize);
        let mut r = BitReader::new(&bytes);
        for &(v, b) in &vals {
            assert_eq!(r.read(b), v, "width {b}");
        }
        r.finish("test").unwrap();
        r.read(9);
        assert!(r.finish("test").is_err());
    }

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            out.clear();
            put_varint(&mut out, v);
            assert_eq!(ByteReader::new(&out).varint("v").unwrap(), v);
        }
        assert!(ByteReader::new(&[0xFF; 11]).varint("v").is_err());
        assert!(ByteReader::new(&[0x80]).varint("v").is_err());
        let mut r = ByteReader::new(&[1, 2]);
        assert!(r.bytes(3, "x").is_err());
        assert_eq!(r.bytes(2, "x").unwrap(), [1, 2]);
    }
}
