//! `salt::event_frame::{msgpack_size, next_frame, split_frame}` on any bytes.
//!
//! Input: first byte picks `max` (the `max_reply_bytes` limit), the rest is the buffer.
//! Checks beyond "no panic":
//! - `msgpack_size` agrees with rmpv on every value rmpv reads (rmpv reads the reserved
//!   byte 0xc1 as nil where msgpack_size refuses it; that difference is allowed);
//! - a frame from `next_frame` is exactly the bytes its prefix or map header says, within
//!   `max`, and every shorter buffer is "need more" while every longer one gives the same
//!   frame;
//! - `split_frame` finds the same `body` bytes and tag as a full rmpv decode of the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmpv::Value;
use salt_fcgi::internals::event_frame::{msgpack_size, next_frame, split_frame};

const MAXES: [usize; 4] = [8, 64, 4096, 64 << 20];

fn refused_0xc1(r: &Result<Option<usize>, String>) -> bool {
    matches!(r, Err(e) if e.contains("0xc1"))
}

/// The bytes of the first `body` entry of a map read by rmpv, as `split_frame` sees it.
fn rmpv_body(value: &Value) -> Option<Vec<u8>> {
    let Value::Map(pairs) = value else {
        return None;
    };
    let (_, v) = pairs.iter().find(|(k, _)| match k {
        Value::String(s) => s.as_bytes() == b"body",
        Value::Binary(b) => b == b"body",
        _ => false,
    })?;
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Binary(b) => Some(b.clone()),
        _ => None,
    }
}

fn check_split(frame: &[u8]) {
    let split = split_frame(frame);
    if let Some((_, data)) = &split {
        let range = frame.as_ptr_range();
        assert!(range.contains(&data.as_ptr()) || data.is_empty());
    }
    // Only fixmap / map16 frames are frames (Salt writes a 2-entry map).
    if !matches!(frame.first(), Some(0x80..=0x8f | 0xde)) {
        assert!(split.is_none());
        return;
    }
    let mut rd = frame;
    let Ok(value) = rmpv::decode::read_value(&mut rd) else {
        return;
    };
    if frame.contains(&0xc1) {
        return; // rmpv read a reserved byte as nil; split_frame may stop there
    }
    let expected = rmpv_body(&value).and_then(|body| {
        let at = body.windows(2).position(|w| w == b"\n\n")?;
        Some((
            String::from_utf8_lossy(&body[..at]).into_owned(),
            body[at + 2..].to_vec(),
        ))
    });
    assert_eq!(
        split.map(|(t, d)| (t, d.to_vec())),
        expected,
        "split_frame vs rmpv"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    let max = MAXES[usize::from(sel) % MAXES.len()];

    // msgpack_size against rmpv.
    let size = msgpack_size(buf);
    let mut rd = buf;
    match rmpv::decode::read_value(&mut rd) {
        Ok(_) => {
            let used = buf.len() - rd.len();
            assert!(
                size == Ok(Some(used)) || refused_0xc1(&size),
                "{size:?} vs rmpv {used}"
            );
        }
        Err(rmpv::decode::Error::DepthLimitExceeded) => {}
        Err(e) => assert!(!matches!(size, Ok(Some(_))), "{size:?} but rmpv: {e}"),
    }
    if let Ok(Some(n)) = size {
        assert!(n <= buf.len());
        for cut in [0, n / 2, n.saturating_sub(1)] {
            if cut < n {
                assert_eq!(msgpack_size(&buf[..cut]), Ok(None), "cut {cut} of {n}");
            }
        }
        assert_eq!(msgpack_size(&buf[..n]), Ok(Some(n)));
    }

    // next_frame.
    match next_frame(buf, max) {
        Ok(Some((frame, used))) => {
            assert!(used <= buf.len() && frame.len() <= max);
            let bare = buf[0] & 0xf0 == 0x80 || buf[0] == 0xde;
            if bare {
                assert_eq!(used, frame.len());
                assert_eq!(frame, &buf[..used]);
                assert_eq!(msgpack_size(buf), Ok(Some(used)));
            } else {
                assert_eq!(used, frame.len() + 4);
                assert_eq!(frame, &buf[4..used]);
                assert_eq!(
                    u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize,
                    frame.len()
                );
            }
            for cut in [0, used / 2, used - 1] {
                assert_eq!(
                    next_frame(&buf[..cut], max),
                    Ok(None),
                    "cut {cut} of {used}"
                );
            }
            assert_eq!(next_frame(&buf[..used], max), Ok(Some((frame, used))));
            check_split(frame);
        }
        Ok(None) => {
            for cut in [0, buf.len() / 2] {
                assert_eq!(next_frame(&buf[..cut], max), Ok(None), "cut {cut}");
            }
        }
        Err(_) => {}
    }
    check_split(buf);
});
