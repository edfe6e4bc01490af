//! The master event bus's byte stream cut into frames, without copying: where one frame
//! ends (bare msgpack maps, or each after a u32 big-endian length, 3006.26+), how big a
//! msgpack value is, and a frame's tag and raw data. Used by the bus reader (`events`) and
//! directly by the fuzz targets.

/// Capacity the frame buffer keeps; the memory of a bigger frame is given back after it.
const FRAME_BUF_KEEP: usize = 64 * 1024;

/// What [`FrameBuffer::drain`] found.
#[derive(Debug, PartialEq)]
pub enum Piece<'a> {
    /// A whole frame (without its length prefix).
    Frame(&'a [u8]),
    /// A frame over `max` whose size its first bytes told: it is thrown away as it
    /// arrives, this many bytes in all.
    Skipped(usize),
}

/// The bytes read from the bus so far, cut into frames as they complete: what the bus
/// reader runs, and what the fuzz targets check.
pub struct FrameBuffer {
    buf: Vec<u8>,
    /// Bytes of an oversized frame still to be thrown away as they arrive.
    skip: usize,
    max: usize,
}

impl FrameBuffer {
    /// An empty buffer for frames of at most `max` bytes.
    pub fn new(max: usize) -> FrameBuffer {
        FrameBuffer {
            buf: Vec::with_capacity(FRAME_BUF_KEEP),
            skip: 0,
            max,
        }
    }

    /// Where the next bytes read from the bus go.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Hands every complete frame (or skipped one) to `each`, in order, until more bytes
    /// are needed; `Err` if the stream cannot be a Salt event stream.
    pub fn drain(&mut self, mut each: impl FnMut(Piece<'_>)) -> Result<(), String> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.drain(..n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(());
                }
            }
            if let Some(total) = oversized_frame(&self.buf, self.max) {
                each(Piece::Skipped(total));
                self.skip = total;
                continue;
            }
            let Some((frame, used)) = next_frame(&self.buf, self.max)? else {
                return Ok(());
            };
            each(Piece::Frame(frame));
            self.buf.drain(..used);
            if self.buf.capacity() > 4 * FRAME_BUF_KEEP && self.buf.len() <= FRAME_BUF_KEEP {
                self.buf.shrink_to(FRAME_BUF_KEEP);
            }
        }
    }
}

/// Splits a frame (`{"head": …, "body": bin}`) into the tag and the raw data bytes.
pub fn split_frame(frame: &[u8]) -> Option<(String, &[u8])> {
    let body = frame_body(frame)?;
    let at = body.windows(2).position(|w| w == b"\n\n")?;
    let tag = String::from_utf8_lossy(&body[..at]).into_owned();
    Some((tag, &body[at + 2..]))
}

/// Finds the `body` value's bytes inside the frame map without copying it.
fn frame_body(frame: &[u8]) -> Option<&[u8]> {
    let mut pos = 0;
    let entries = map_len(frame, &mut pos)?;
    for _ in 0..entries {
        let key_start = pos;
        let key_len = msgpack_size(&frame[pos..]).ok()??;
        pos += key_len;
        let key = str_value(&frame[key_start..pos]);
        if key == Some(b"body".as_slice()) {
            return bin_or_str_value(&frame[pos..]);
        }
        pos += msgpack_size(&frame[pos..]).ok()??;
    }
    None
}

fn map_len(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let first = *buf.first()?;
    match first {
        0x80..=0x8f => {
            *pos = 1;
            Some(usize::from(first & 0x0f))
        }
        0xde => {
            *pos = 3;
            Some(usize::from(u16::from_be_bytes([
                *buf.get(1)?,
                *buf.get(2)?,
            ])))
        }
        _ => None,
    }
}

/// The payload of a str or bin value at the start of `buf`.
fn bin_or_str_value(buf: &[u8]) -> Option<&[u8]> {
    let (header, len): (usize, usize) = match *buf.first()? {
        b @ 0xa0..=0xbf => (1, usize::from(b & 0x1f)),
        0xc4 | 0xd9 => (2, usize::from(*buf.get(1)?)),
        0xc5 | 0xda => (
            3,
            usize::from(u16::from_be_bytes([*buf.get(1)?, *buf.get(2)?])),
        ),
        0xc6 | 0xdb => (5, be_u32(buf.get(1..5)?) as usize),
        _ => return None,
    };
    buf.get(header..header.checked_add(len)?)
}

fn str_value(buf: &[u8]) -> Option<&[u8]> {
    bin_or_str_value(buf)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The whole length (length prefix included) of the frame starting `buf` when it is over
/// `max` and its size is already known from its first bytes: the reader skips it. (A bare
/// frame whose size shows only after `max` bytes is still an error, as before.)
pub(crate) fn oversized_frame(buf: &[u8], max: usize) -> Option<usize> {
    let first = *buf.first()?;
    if first & 0xf0 == 0x80 || first == 0xde {
        // Only what the first `max` bytes tell, so the answer does not depend on how the
        // bytes arrived: a frame whose size shows later is an error for `next_frame`.
        let size = measure(&buf[..buf.len().min(max)], true).ok()??;
        return (size > max).then_some(size);
    }
    let len = be_u32(buf.get(..4)?) as usize;
    (len > max).then(|| len.saturating_add(4))
}

/// The next complete frame in `buf` and how many bytes it used (prefix included);
/// `Ok(None)` if more bytes are needed; `Err` if the stream cannot be a Salt event stream.
pub fn next_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, String> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first & 0xf0 == 0x80 || first == 0xde {
        // A bare msgpack map (3006.0-3006.25, 3007, 3008).
        return match msgpack_size(buf)? {
            Some(n) if n <= max => Ok(Some((&buf[..n], n))),
            Some(n) => Err(format!("event of {n} bytes is over max_reply_bytes")),
            None if buf.len() > max => Err("event over max_reply_bytes".into()),
            None => Ok(None),
        };
    }
    // A u32 big-endian length, then the map (3006.26+).
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = be_u32(&buf[..4]) as usize;
    if len > max {
        return Err(format!("event of {len} bytes is over max_reply_bytes"));
    }
    Ok(buf.get(4..4 + len).map(|f| (f, 4 + len)))
}

/// Size in bytes of the msgpack value at the start of `buf`: `Ok(None)` if it is cut
/// short, `Err` on a byte that starts no msgpack value anywhere in `buf`. Iterative:
/// nesting costs no stack, and each step consumes a byte, so the work is bounded by `buf`.
pub fn msgpack_size(buf: &[u8]) -> Result<Option<usize>, String> {
    measure(buf, false)
}

/// `msgpack_size`; with `declared`, also the size of a value whose last payload (a str,
/// bin or ext body) is not all in `buf` yet, as its header declares it.
fn measure(buf: &[u8], declared: bool) -> Result<Option<usize>, String> {
    let mut pos = 0usize;
    let mut pending = 1usize;
    while pending > 0 {
        let Some(&b) = buf.get(pos) else {
            return Ok(None);
        };
        pending -= 1;
        let be = |n: usize| -> Option<usize> {
            let bytes = buf.get(pos + 1..pos + 1 + n)?;
            Some(
                bytes
                    .iter()
                    .fold(0usize, |acc, &x| (acc << 8) | usize::from(x)),
            )
        };
        // (header bytes, payload bytes, child values)
        let (head, body, children) = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * usize::from(b & 0x0f)),
            0x90..=0x9f => (1, 0, usize::from(b & 0x0f)),
            0xa0..=0xbf => (1, usize::from(b & 0x1f), 0),
            0xc4 | 0xd9 => match be(1) {
                Some(n) => (2, n, 0),
                None => return Ok(None),
            },
            0xc5 | 0xda => match be(2) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc6 | 0xdb => match be(4) {
                Some(n) => (5, n, 0),
                None => return Ok(None),
            },
            0xc7 => match be(1) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc8 => match be(2) {
                Some(n) => (4, n, 0),
                None => return Ok(None),
            },
            0xc9 => match be(4) {
                Some(n) => (6, n, 0),
                None => return Ok(None),
            },
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => match be(2) {
                Some(n) => (3, 0, n),
                None => return Ok(None),
            },
            0xdd => match be(4) {
                Some(n) => (5, 0, n),
                None => return Ok(None),
            },
            0xde => match be(2) {
                Some(n) => (3, 0, 2 * n),
                None => return Ok(None),
            },
            0xdf => match be(4) {
                Some(n) => (5, 0, 2 * n),
                None => return Ok(None),
            },
            0xc1 => return Err("byte 0xc1 starts no msgpack value".into()),
        };
        pos = pos.checked_add(head + body).ok_or("size overflow")?;
        pending = pending.checked_add(children).ok_or("size overflow")?;
    }
    Ok((declared || pos <= buf.len()).then_some(pos))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::salt::payload;
    use serde_json::{Value as Json, json};

    /// A frame as the master writes it: `{"head": {}, "body": bin(tag + "\n\n" + data)}`.
    pub(crate) fn frame(tag: &str, data: &Json) -> Vec<u8> {
        let mut body = tag.as_bytes().to_vec();
        body.extend_from_slice(b"\n\n");
        body.extend(payload::encode(data));
        let map = rmpv::Value::Map(vec![
            (rmpv::Value::from("head"), rmpv::Value::Map(vec![])),
            (rmpv::Value::from("body"), rmpv::Value::Binary(body)),
        ]);
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &map).expect("encode");
        out
    }

    #[test]
    fn bare_and_prefixed_frames() {
        let f = frame("salt/job/1/new", &json!({"minions": ["a"]}));
        assert_eq!(f[0], 0x82);
        let mut prefixed = (f.len() as u32).to_be_bytes().to_vec();
        prefixed.extend(&f);
        for stream in [f.clone(), prefixed] {
            for cut in 0..stream.len() {
                assert_eq!(
                    next_frame(&stream[..cut], 1 << 20),
                    Ok(None),
                    "cut at {cut}"
                );
            }
            let (frame, used) = next_frame(&stream, 1 << 20).expect("ok").expect("complete");
            assert_eq!(used, stream.len());
            let (tag, data) = split_frame(frame).expect("split");
            assert_eq!(tag, "salt/job/1/new");
            assert_eq!(
                payload::decode(data).expect("data"),
                json!({"minions": ["a"]})
            );
        }
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        let f = frame("t", &json!({"x": "y".repeat(100)}));
        assert!(next_frame(&f, 50).is_err());
        assert!(next_frame(&[0, 0, 1, 0], 100).is_err());
        assert!(msgpack_size(&[0xc1]).is_err());
        // A claimed 4-billion-element array in a short buffer is "incomplete", not a hang.
        assert_eq!(msgpack_size(&[0xdd, 0xff, 0xff, 0xff, 0xff, 1]), Ok(None));
    }

    #[test]
    fn sizes_of_every_kind() {
        let v = rmpv::Value::Array(vec![
            rmpv::Value::from(1),
            rmpv::Value::from(-100_000),
            rmpv::Value::from(1.5f64),
            rmpv::Value::from("x".repeat(300)),
            rmpv::Value::Binary(vec![1; 70_000]),
            rmpv::Value::Ext(78, b"20240101T00:00:00.1".to_vec()),
            rmpv::Value::Map(vec![(rmpv::Value::Nil, rmpv::Value::Boolean(true))]),
        ]);
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &v).expect("encode");
        assert_eq!(msgpack_size(&out), Ok(Some(out.len())));
        out.push(0);
        assert_eq!(msgpack_size(&out), Ok(Some(out.len() - 1)));
    }

    /// Everything `FrameBuffer` gives for `stream` read `size` bytes at a time, and
    /// whether it ended in an error.
    fn cut(stream: &[u8], size: usize, max: usize) -> (Vec<Result<Vec<u8>, usize>>, bool) {
        let mut frames = FrameBuffer::new(max);
        let mut found = Vec::new();
        for part in stream.chunks(size) {
            frames.buffer().extend_from_slice(part);
            let ended = frames.drain(|p| match p {
                Piece::Frame(f) => found.push(Ok(f.to_vec())),
                Piece::Skipped(n) => found.push(Err(n)),
            });
            if ended.is_err() {
                return (found, true);
            }
        }
        (found, false)
    }

    /// Found by the event_stream fuzz target: a bare map whose size shows only after
    /// `max` bytes was skipped when it arrived whole and an error when it arrived in pieces.
    #[test]
    fn the_outcome_does_not_depend_on_read_boundaries() {
        let stream = b"\x82\xa4head\x80\xa4bod\x05\xff\x01\x79\xc4\x02\x00\x00\x00";
        let whole = cut(stream, stream.len(), 8);
        for size in 1..stream.len() {
            assert_eq!(cut(stream, size, 8), whole, "reads of {size}");
        }
        assert!(whole.1, "not measurable within max: an error");
        let big = frame("t", &json!({"x": "y".repeat(100)}));
        let whole = cut(&big, big.len(), 50);
        assert_eq!(whole, (vec![Err(big.len())], false), "measurable: skipped");
        for size in 1..big.len() {
            assert_eq!(cut(&big, size, 50), whole, "reads of {size}");
        }
    }
}
