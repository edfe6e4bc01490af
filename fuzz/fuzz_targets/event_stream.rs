//! The event-bus reader's framing under arbitrary read boundaries.
//!
//! Input: byte 0 picks `max`, byte 1 the number N (0..=15) of read sizes, the next N
//! bytes are read sizes (used in turn, 0 meaning 1), the rest is the stream. The bus
//! reader's own `FrameBuffer` (frames taken while complete, oversized ones skipped, an
//! error ends the stream) must find the same frames and skips, and end the same way (error
//! or need-more), as when the whole stream is there at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::event_frame::{FrameBuffer, Piece, split_frame};

const MAXES: [usize; 4] = [8, 64, 4096, 64 << 20];

/// A frame (its bytes) or a skip (its size), as `FrameBuffer::drain` gave them.
type Found = Vec<Result<Vec<u8>, usize>>;

/// Everything found and whether the stream ended in an error, reading `sizes` at a time.
fn run(stream: &[u8], sizes: &[usize], max: usize) -> (Found, bool) {
    let mut frames = FrameBuffer::new(max);
    let mut found = Found::new();
    let mut offset = 0;
    let mut turn = 0;
    loop {
        let cut = frames.drain(|piece| match piece {
            Piece::Frame(f) => found.push(Ok(f.to_vec())),
            Piece::Skipped(n) => {
                assert!(n > max, "skipped {n} bytes, max {max}");
                found.push(Err(n));
            }
        });
        if cut.is_err() {
            return (found, true);
        }
        if offset == stream.len() {
            return (found, false);
        }
        let n = sizes[turn % sizes.len()].min(stream.len() - offset);
        turn += 1;
        frames
            .buffer()
            .extend_from_slice(&stream[offset..offset + n]);
        offset += n;
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, count, rest @ ..] = data else {
        return;
    };
    let max = MAXES[usize::from(*sel) % MAXES.len()];
    let count = usize::from(count % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(count);
    let mut sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s).max(1)).collect();
    if sizes.is_empty() {
        sizes.push(1);
    }

    let whole = run(stream, &[stream.len().max(1)], max);
    let pieces = run(stream, &sizes, max);
    assert_eq!(pieces.0.len(), whole.0.len(), "number of frames");
    assert_eq!(
        pieces, whole,
        "frames or ending differ with reads of {sizes:?}"
    );
    for frame in whole.0.iter().flatten() {
        assert!(frame.len() <= max);
        let _ = split_frame(frame);
    }
});
