//! Compressed frames: how a v2 block's records and columns are stored.
//!
//! A frame is one zstd frame (RFC 8878) with its content size and content checksum, so a
//! flipped stored byte fails decompression rather than yielding other bytes, and the size is
//! known before anything is allocated.
//!
//! Owns: [`compress`], [`decompress`] and their limits. Must not: know what the bytes mean.

use zstd::zstd_safe;

/// zstd level of new frames. On blocks of realistic security lines (BENCHMARKS.md), level 1
/// keeps both the fewest bytes of the fast levels (35 B per entry against level 3's 37) and
/// the writer's rate (+15% over level 3); levels 9 to 19 keep 7-15% less for several times
/// the CPU. Key `segment_zstd_level`.
pub const DEFAULT_LEVEL: i32 = 1;

/// The highest level accepted: above it zstd needs far more memory per context.
pub const MAX_LEVEL: i32 = 19;

/// Decompressed bytes of one frame at most. A block's records are at most
/// [`super::BLOCK_MAX_BYTES`] unless one record is larger, and a record is bounded by the push
/// plane's largest entry; this bound keeps a forged frame that claims more from allocating it.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a zstd frame with a content size")]
    NoSize,
    #[error("frame claims {claimed} bytes, expected {expected}")]
    Size { claimed: u64, expected: u64 },
    #[error("frame claims {0} bytes, more than the {MAX_FRAME_BYTES} a frame may hold")]
    TooLarge(u64),
    #[error("frame does not decompress: {0}")]
    Corrupt(String),
    #[error("{0} bytes follow the frame")]
    Trailing(usize),
}

/// A reusable compressor (one per writer: its context is a few hundred KiB).
pub struct Compressor(zstd::bulk::Compressor<'static>);

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compressor")
    }
}

impl Compressor {
    pub fn new(level: i32) -> std::io::Result<Self> {
        let mut c = zstd::bulk::Compressor::new(level)?;
        c.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))?;
        c.set_parameter(zstd::stream::raw::CParameter::ContentSizeFlag(true))?;
        Ok(Self(c))
    }

    /// `raw` as one frame.
    pub fn compress(&mut self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        self.0.compress(raw)
    }
}

thread_local! {
    /// One decompression context per thread (each is about 100 KiB to set up).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().ok());
}

/// The bytes of `frame`, which must be exactly one frame of `expected` bytes (or of any size
/// up to [`MAX_FRAME_BYTES`] when `expected` is `None`).
pub fn decompress(frame: &[u8], expected: Option<u64>) -> Result<Vec<u8>, FrameError> {
    let claimed = match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) => n,
        _ => return Err(FrameError::NoSize),
    };
    if let Some(expected) = expected.filter(|&e| e != claimed) {
        return Err(FrameError::Size { claimed, expected });
    }
    if claimed > MAX_FRAME_BYTES as u64 {
        return Err(FrameError::TooLarge(claimed));
    }
    let size = zstd_safe::find_frame_compressed_size(frame)
        .map_err(|c| FrameError::Corrupt(zstd_safe::get_error_name(c).into()))?;
    if size != frame.len() {
        return Err(FrameError::Trailing(frame.len().saturating_sub(size)));
    }
    let mut out = Vec::with_capacity(claimed as usize);
    DECOMPRESSOR
        .with_borrow_mut(|d| match d {
            Some(d) => d.decompress_to_buffer(frame, &mut out),
            None => Err(std::io::Error::other("no decompression context")),
        })
        .map_err(|e| FrameError::Corrupt(e.to_string()))?;
    if out.len() as u64 != claimed {
        return Err(FrameError::Size {
            claimed,
            expected: out.len() as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(raw: &[u8]) -> Vec<u8> {
        Compressor::new(DEFAULT_LEVEL)
            .unwrap()
            .compress(raw)
            .unwrap()
    }

    #[test]
    fn a_frame_gives_back_its_bytes() {
        let raw = b"Failed password for root from 203.0.113.7 port 22 ssh2\n".repeat(50);
        let f = frame(&raw);
        assert!(f.len() < raw.len() / 5);
        assert_eq!(decompress(&f, Some(raw.len() as u64)).unwrap(), raw);
        assert_eq!(decompress(&f, None).unwrap(), raw);
        assert_eq!(decompress(&frame(b""), Some(0)).unwrap(), b"");
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let raw = b"sudo: alice : TTY=pts/0 ; COMMAND=/bin/sh".repeat(20);
        let f = frame(&raw);
        for i in 0..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x01;
            let got = decompress(&bad, Some(raw.len() as u64));
            assert!(
                got.as_deref() != Ok(&raw[..]),
                "byte {i} flipped went unnoticed"
            );
        }
    }

    #[test]
    fn wrong_sizes_trailing_bytes_and_huge_claims_are_refused() {
        let f = frame(b"abc");
        assert_eq!(
            decompress(&f, Some(4)),
            Err(FrameError::Size {
                claimed: 3,
                expected: 4
            })
        );
        let mut long = f.clone();
        long.push(0);
        assert_eq!(decompress(&long, Some(3)), Err(FrameError::Trailing(1)));
        assert_eq!(decompress(b"", None), Err(FrameError::NoSize));
        let huge = frame(&vec![0u8; MAX_FRAME_BYTES + 1]);
        assert!(matches!(
            decompress(&huge, None),
            Err(FrameError::TooLarge(_))
        ));
    }
}
