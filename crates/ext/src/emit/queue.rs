//! The work queue: pieces claimed strictly in the order of their first
//! block by the workers, and how far the image is final.

use std::collections::BTreeSet;
use std::sync::Mutex;

use kiln_sink::Sink;

use super::Piece;
use crate::EmitError;

/// A worker starts no new piece while the sink holds more than this many
/// bytes that are not final (a streaming sink keeps them in memory), unless
/// nothing else is in flight.
const PENDING_LIMIT: u64 = 256 << 20;

/// The pieces, claimed in order by the workers, and which are in flight.
pub(super) struct Queue {
    /// Pieces with their first byte offset, ascending.
    pieces: Vec<(u64, Piece)>,
    image_size: u64,
    state: Mutex<QueueState>,
}

/// What the workers share.
#[derive(Default)]
struct QueueState {
    /// The next piece to claim.
    next: usize,
    /// Pieces claimed and not finished.
    in_flight: BTreeSet<usize>,
    /// A piece failed: claim no more.
    failed: bool,
}

impl Queue {
    /// The queue of `pieces` (first block, piece) of an image of
    /// `image_size` bytes.
    pub(super) fn new(mut pieces: Vec<(u64, Piece)>, image_size: u64, block_size: u32) -> Queue {
        // In place: a copy would double the list while both live.
        for (first, _) in &mut pieces {
            *first *= u64::from(block_size);
        }
        Queue {
            pieces,
            image_size,
            state: Mutex::new(QueueState::default()),
        }
    }

    /// One worker: claims pieces in order and renders them; after each,
    /// tells the sink how far the image is final. Returns the failure of
    /// the piece it stopped at, with that piece's index.
    pub(super) fn work(
        &self,
        sink: &dyn Sink,
        render: &(dyn Fn(Piece) -> Result<(), EmitError> + Sync),
    ) -> Option<(usize, EmitError)> {
        loop {
            let index = {
                let mut st = self.lock();
                if st.failed || st.next >= self.pieces.len() {
                    return None;
                }
                if !st.in_flight.is_empty() && sink.pending() > PENDING_LIMIT {
                    // The oldest piece in flight will make the pending
                    // bytes final; poll until it has.
                    drop(st);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                let index = st.next;
                st.next += 1;
                st.in_flight.insert(index);
                index
            };
            let result = render(self.pieces[index].1);
            let final_below = {
                let mut st = self.lock();
                st.in_flight.remove(&index);
                st.failed |= result.is_err();
                let oldest = st.in_flight.first().copied().unwrap_or(st.next);
                self.pieces.get(oldest).map_or(self.image_size, |p| p.0)
            };
            if let Err(e) = result.and_then(|()| Ok(sink.advance(final_below)?)) {
                self.lock().failed = true;
                return Some((index, e));
            }
        }
    }

    /// The shared state; a worker that panicked left it consistent (the
    /// panic is re-raised by `emit`).
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
