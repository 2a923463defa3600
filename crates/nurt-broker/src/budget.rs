//! The memory all requests in flight may take, across every connection
//! (`queued.max.request.bytes`, Kafka's name for the same bound).
//!
//! Two charges, one limit each, both set by `queued.max.request.bytes`:
//! - **frames** (the whole limit): a request's bytes are charged as they arrive, before the
//!   buffer grows for them, so the number of connections cannot multiply the frame size into
//!   an out-of-memory kill, while a length that is announced but not sent costs nothing;
//! - **decoding** (a quarter of it): once the guard has walked the body (without allocating)
//!   the request is charged [`DECODED_BYTES_PER_ELEMENT`] per collection element, for the
//!   structures decoding and answering it will build (measured: about 360 bytes per one-byte
//!   element of a DescribeGroups request). With the default that is about 175,000 elements
//!   in flight, and one request with more is refused.
//!
//! A request waits (FIFO) until its charge fits; one whose charge can never fit is refused and
//! its connection closed; a frame that waits for room longer than `connections.max.idle.ms`
//! is closed too (so half-sent frames cannot hold memory forever). Waiting for decoding while
//! holding a frame charge cannot deadlock: holders of decoding charges wait for nothing else.
//! Charges are released when the handler has produced the response.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes charged per collection element for decoding a request and building its answer.
pub const DECODED_BYTES_PER_ELEMENT: usize = 384;

/// The decoding budget is this fraction of `queued.max.request.bytes`.
const DECODING_SHARE_DIVISOR: usize = 4;

/// Default `queued.max.request.bytes` (Kafka's default, -1, is unbounded).
pub const QUEUED_MAX_REQUEST_BYTES: usize = 256 << 20;

/// Charges are counted in KiB so any limit fits a semaphore's `u32` permits.
const UNIT_BYTES: usize = 1024;

/// A request's charge is larger than the whole budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a request needing {needed_bytes} bytes exceeds its share of queued.max.request.bytes ({max_bytes})")]
pub struct OverBudget {
    pub needed_bytes: usize,
    pub max_bytes: usize,
}

/// The shared budget.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    frames: Arc<Semaphore>,
    decoding: Arc<Semaphore>,
    frame_units: u32,
    decoding_units: u32,
}

/// What one request holds until it is answered.
#[derive(Debug)]
pub struct Charge {
    _frame: Option<OwnedSemaphorePermit>,
    frame_units: usize,
    _decoding: Option<OwnedSemaphorePermit>,
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT_BYTES)
}

impl RequestBudget {
    /// A budget of `max_bytes` for frames and a quarter of that for decoding.
    pub fn new(max_bytes: usize) -> Self {
        let frame_units = units(max_bytes).clamp(1, u32::MAX as usize) as u32;
        let decoding_units = (frame_units as usize / DECODING_SHARE_DIVISOR).max(1) as u32;
        Self {
            frames: Arc::new(Semaphore::new(frame_units as usize)),
            decoding: Arc::new(Semaphore::new(decoding_units as usize)),
            frame_units,
            decoding_units,
        }
    }

    async fn take(
        &self,
        pool: &Arc<Semaphore>,
        max_units: u32,
        bytes: usize,
    ) -> Result<Option<OwnedSemaphorePermit>, OverBudget> {
        let needed = units(bytes);
        if needed == 0 {
            return Ok(None);
        }
        let over = OverBudget {
            needed_bytes: bytes,
            max_bytes: max_units as usize * UNIT_BYTES,
        };
        if needed > max_units as usize {
            return Err(over);
        }
        // The semaphore is never closed, so acquiring only fails if it were.
        let permit = Arc::clone(pool)
            .acquire_many_owned(needed as u32)
            .await
            .map_err(|_| over)?;
        Ok(Some(permit))
    }

    /// Starts the charge of a frame of `len` bytes: refused if it can never fit. The bytes
    /// are charged as they arrive, with [`RequestBudget::charge_frame`].
    pub fn admit_frame(&self, len: usize) -> Result<Charge, OverBudget> {
        if units(len) > self.frame_units as usize {
            return Err(OverBudget {
                needed_bytes: len,
                max_bytes: self.frame_units as usize * UNIT_BYTES,
            });
        }
        Ok(Charge {
            _frame: None,
            frame_units: 0,
            _decoding: None,
        })
    }

    /// Grows a frame's charge to cover `buffered_bytes`, waiting for room.
    pub async fn charge_frame(&self, charge: &mut Charge, buffered_bytes: usize) -> Result<(), OverBudget> {
        let wanted = units(buffered_bytes);
        if wanted <= charge.frame_units {
            return Ok(());
        }
        let more = self
            .take(
                &self.frames,
                self.frame_units,
                (wanted - charge.frame_units) * UNIT_BYTES,
            )
            .await?;
        if let Some(more) = more {
            match charge._frame.as_mut() {
                Some(held) => held.merge(more),
                None => charge._frame = Some(more),
            }
        }
        charge.frame_units = wanted;
        Ok(())
    }

    /// Adds the decoding charge for a request of `elements` collection elements.
    pub async fn admit_decoding(&self, charge: &mut Charge, elements: usize) -> Result<(), OverBudget> {
        let bytes = elements.saturating_mul(DECODED_BYTES_PER_ELEMENT);
        charge._decoding = self.take(&self.decoding, self.decoding_units, bytes).await?;
        Ok(())
    }

    /// Free decoding budget, in bytes (for tests and diagnostics).
    pub fn decoding_available_bytes(&self) -> usize {
        self.decoding.available_permits() * UNIT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_wait_for_room_and_oversized_ones_are_refused() {
        let budget = RequestBudget::new(4 << 20);
        // A frame announced but not sent costs nothing.
        let mut big = budget.admit_frame(3 << 20).unwrap();
        assert_eq!(big.frame_units, 0);
        budget.charge_frame(&mut big, 3 << 20).await.unwrap();
        // A second frame whose bytes do not fit waits until the first is released.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut c = budget.admit_frame(2 << 20)?;
                budget.charge_frame(&mut c, 2 << 20).await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        budget.admit_decoding(&mut big, 1000).await.unwrap();
        assert_eq!(
            budget.decoding_available_bytes(),
            (1 << 20) - 1000 * DECODED_BYTES_PER_ELEMENT
        );
        drop(big);
        waiting.await.unwrap().unwrap();
        assert_eq!(budget.decoding_available_bytes(), 1 << 20);
        assert!(budget.admit_frame(5 << 20).is_err());
        let mut charge = budget.admit_frame(10).unwrap();
        assert!(budget.admit_decoding(&mut charge, 1 << 20).await.is_err());
    }
}
