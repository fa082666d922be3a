//! Syslog over a stream (RFC 6587, and RFC 5425 inside TLS): octet counting (`LEN SP MSG`)
//! or a newline after each message, recognised frame by frame as rsyslog and syslog-ng do.
//!
//! Owns: cutting frames from the front of a connection's buffer (a newline that ends an
//! octet-counted frame is dropped with it, as the newline of a newline-framed one is), and
//! the bound on one
//! message: a frame over `max` bytes is reported with its size and skipped without being
//! buffered (an octet-counted one by its declared length, a newline-ended one to its
//! newline), so the buffer never holds more than `max` plus one read.
//!
//! Must not: parse messages (that is `parse`).

use bytes::{Buf, Bytes, BytesMut};

/// Longest octet count accepted: ten digits, more than any `max`.
const MAX_LEN_DIGITS: usize = 10;

/// What the front of the buffer held.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Message(Bytes),
    /// A message of this many bytes, over the limit, skipped.
    TooLarge(usize),
}

/// An octet count that is not one: the stream cannot be resynchronised.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid octet count in syslog framing")]
pub struct BadFraming;

/// Per-connection framing state.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    /// Bytes of an oversized octet-counted frame still to skip.
    skip: usize,
    /// Skipping an oversized newline-ended frame up to its newline.
    skip_line: bool,
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer {
            max,
            skip: 0,
            skip_line: false,
        }
    }

    /// Moves every complete frame at the front of `buf` into `out`.
    pub fn frames(&mut self, buf: &mut BytesMut, out: &mut Vec<Frame>) -> Result<(), BadFraming> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(());
                }
            }
            if self.skip_line {
                match buf.iter().position(|&c| c == b'\n') {
                    Some(p) => {
                        buf.advance(p + 1);
                        self.skip_line = false;
                    }
                    None => {
                        buf.clear();
                        return Ok(());
                    }
                }
            }
            let Some(&first) = buf.first() else {
                return Ok(());
            };
            let more = if first.is_ascii_digit() && first != b'0' {
                self.counted(buf, out)?
            } else {
                self.line(buf, out)
            };
            if !more {
                return Ok(());
            }
        }
    }

    /// One octet-counted frame; false when it is not all here yet.
    fn counted(&mut self, buf: &mut BytesMut, out: &mut Vec<Frame>) -> Result<bool, BadFraming> {
        let digits = buf
            .iter()
            .take(MAX_LEN_DIGITS + 1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == buf.len() && digits <= MAX_LEN_DIGITS {
            return Ok(false);
        }
        if digits > MAX_LEN_DIGITS || buf[digits] != b' ' {
            return Err(BadFraming);
        }
        let len: usize = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(BadFraming)?;
        if len > self.max {
            buf.advance(digits + 1);
            self.skip = len;
            out.push(Frame::TooLarge(len));
            return Ok(true);
        }
        if buf.len() < digits + 1 + len {
            return Ok(false);
        }
        buf.advance(digits + 1);
        let mut frame = buf.split_to(len);
        // rsyslog's stock RFC 5424 templates end with a newline, which is framing, not message.
        if frame.ends_with(b"\n") {
            frame.truncate(frame.len() - 1);
            if frame.ends_with(b"\r") {
                frame.truncate(frame.len() - 1);
            }
        }
        out.push(Frame::Message(frame.freeze()));
        Ok(true)
    }

    /// One newline-ended frame (a trailing CR and NUL-ended frames too); false when its end
    /// is not here yet.
    fn line(&mut self, buf: &mut BytesMut, out: &mut Vec<Frame>) -> bool {
        let Some(p) = buf.iter().position(|&c| c == b'\n' || c == 0) else {
            if buf.len() > self.max {
                out.push(Frame::TooLarge(buf.len()));
                self.skip_line = true;
                buf.clear();
            }
            return false;
        };
        let mut frame = buf.split_to(p);
        buf.advance(1);
        if frame.last() == Some(&b'\r') {
            frame.truncate(frame.len() - 1);
        }
        if frame.len() > self.max {
            out.push(Frame::TooLarge(frame.len()));
        } else if !frame.is_empty() {
            out.push(Frame::Message(frame.freeze()));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &mut Framer, buf: &mut BytesMut, data: &[u8]) -> Vec<Frame> {
        buf.extend_from_slice(data);
        let mut out = Vec::new();
        f.frames(buf, &mut out).unwrap();
        out
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn both_framings_in_pieces() {
        let mut f = Framer::new(100);
        let mut buf = BytesMut::new();
        assert_eq!(run(&mut f, &mut buf, b"5 he"), []);
        assert_eq!(
            run(&mut f, &mut buf, b"llo<13>a\r\n<13>"),
            [msg("hello"), msg("<13>a")]
        );
        assert_eq!(
            run(&mut f, &mut buf, b"b\n\n3 xyz"),
            [msg("<13>b"), msg("xyz")]
        );
        assert!(buf.is_empty());
        assert_eq!(run(&mut f, &mut buf, b"12"), []);
        let mut buf = BytesMut::new();
        assert_eq!(
            run(&mut f, &mut buf, b"19 <13>1 - - - - - -\r\n"),
            [msg("<13>1 - - - - - -")]
        );
    }

    #[test]
    fn oversized_frames_are_skipped_without_being_buffered() {
        let mut f = Framer::new(10);
        let mut buf = BytesMut::new();
        assert_eq!(
            run(&mut f, &mut buf, b"20 0123456789"),
            [Frame::TooLarge(20)]
        );
        assert!(buf.is_empty());
        assert_eq!(run(&mut f, &mut buf, b"01234567893 abc"), [msg("abc")]);
        assert_eq!(
            run(&mut f, &mut buf, b"<13>0123456789012"),
            [Frame::TooLarge(17)]
        );
        assert!(buf.is_empty());
        assert_eq!(run(&mut f, &mut buf, b"more\n<13>ok\n"), [msg("<13>ok")]);
    }

    #[test]
    fn a_count_that_is_no_count_ends_the_stream() {
        let mut f = Framer::new(10);
        let mut out = Vec::new();
        assert_eq!(
            f.frames(&mut BytesMut::from(&b"12x"[..]), &mut out),
            Err(BadFraming)
        );
        assert_eq!(
            f.frames(&mut BytesMut::from(&b"12345678901 "[..]), &mut out),
            Err(BadFraming)
        );
    }
}
