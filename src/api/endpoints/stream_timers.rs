//! The times an event stream waits for, kept as instants under one timer: the next
//! heartbeat (`stream_heartbeat`), the next token check (`stream_token_check`), the token's
//! expiry, and the end of a hold (`stream_write_interval`).
//!
//! One `Sleep` set to the earliest of them replaces four timers: an idle stream's task is
//! smaller (each tokio timer is a timer-wheel entry inside the task), and its loop has one
//! branch for time instead of four.

use std::time::Duration;

use tokio::time::Instant;

/// What the timer found due, most urgent first.
#[derive(Debug, PartialEq)]
pub(super) enum Due {
    /// The token expired: the stream ends.
    Expiry,
    /// Ask the master whether the token is still valid.
    TokenCheck,
    /// Send an SSE heartbeat comment.
    Heartbeat,
    /// The hold is over: the held events may go.
    HoldOver,
    /// Nothing yet (the timer fired for a time that has since moved).
    Nothing,
}

/// A stream's instants.
#[derive(Debug)]
pub(super) struct StreamTimers {
    heartbeat_every: Duration,
    check_every: Duration,
    write_interval: Duration,
    heartbeat_at: Instant,
    check_at: Instant,
    expire_at: Instant,
    /// When the last burst's interval ends: events before it are held.
    next_burst: Instant,
    /// Events are held until `next_burst`.
    holding: bool,
}

impl StreamTimers {
    /// Timers started now, for a token that expires in `left`.
    pub(super) fn new(
        heartbeat_every: Duration,
        check_every: Duration,
        write_interval: Duration,
        left: Duration,
    ) -> StreamTimers {
        let now = Instant::now();
        StreamTimers {
            heartbeat_every,
            check_every,
            write_interval,
            heartbeat_at: now + heartbeat_every,
            check_at: now + check_every,
            expire_at: now + left,
            next_burst: now,
            holding: false,
        }
    }

    /// The earliest instant the stream waits for.
    pub(super) fn next(&self) -> Instant {
        let hold = if self.holding {
            self.next_burst
        } else {
            self.expire_at
        };
        self.expire_at
            .min(self.check_at)
            .min(self.heartbeat_at)
            .min(hold)
    }

    /// The token's expiry.
    pub(super) fn expire_at(&self) -> Instant {
        self.expire_at
    }

    /// The most urgent thing due at `now`; a periodic one is rescheduled (one period
    /// from now if the stream fell more than a period behind).
    pub(super) fn due(&mut self, now: Instant) -> Due {
        if now >= self.expire_at {
            Due::Expiry
        } else if now >= self.check_at {
            self.check_at = Self::after(self.check_at, self.check_every, now);
            Due::TokenCheck
        } else if now >= self.heartbeat_at {
            self.heartbeat_at = Self::after(self.heartbeat_at, self.heartbeat_every, now);
            Due::Heartbeat
        } else if self.holding && now >= self.next_burst {
            self.holding = false;
            Due::HoldOver
        } else {
            Due::Nothing
        }
    }

    fn after(at: Instant, every: Duration, now: Instant) -> Instant {
        let next = at + every;
        if next > now { next } else { now + every }
    }

    /// The master said the token expires in `left`.
    pub(super) fn set_expiry(&mut self, left: Duration) {
        self.expire_at = Instant::now() + left;
    }

    /// Whether events are being held.
    pub(super) fn holding(&self) -> bool {
        self.holding
    }

    /// An event arrived: it is held if it follows the last burst too soon.
    pub(super) fn event_arrived(&mut self) {
        self.holding = Instant::now() < self.next_burst;
    }

    /// The hold ends now (the stream's queue is half full).
    pub(super) fn release(&mut self) {
        self.holding = false;
    }

    /// A burst of events went out: the next one waits for the interval, unless the
    /// client is behind (`caught_up` false), who is fed as fast as it takes chunks.
    pub(super) fn burst_sent(&mut self, caught_up: bool) {
        self.next_burst = Instant::now();
        if caught_up {
            self.next_burst += self.write_interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn periodic_times_come_in_order_and_expiry_first() {
        let mut t = StreamTimers::new(15 * S, 10 * S, S / 4, 25 * S);
        let start = Instant::now();
        assert_eq!(t.next(), start + 10 * S);
        assert_eq!(t.due(start + 5 * S), Due::Nothing);
        assert_eq!(t.due(start + 10 * S), Due::TokenCheck);
        assert_eq!(t.next(), start + 15 * S);
        assert_eq!(t.due(start + 15 * S), Due::Heartbeat);
        assert_eq!(t.next(), start + 20 * S);
        // Far behind: expiry wins, and periodic times move one period past now.
        assert_eq!(t.due(start + 100 * S), Due::Expiry);
        t.set_expiry(1000 * S);
        assert_eq!(t.due(start + 100 * S), Due::TokenCheck);
        assert_eq!(t.due(start + 100 * S), Due::Heartbeat);
        assert_eq!(t.next(), start + 110 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_soon_after_a_burst_is_held_until_the_interval_ends() {
        let mut t = StreamTimers::new(15 * S, 10 * S, S, 25 * S);
        let start = Instant::now();
        t.event_arrived();
        assert!(!t.holding(), "the first event goes at once");
        t.burst_sent(true);
        t.event_arrived();
        assert!(t.holding());
        assert_eq!(t.next(), start + S);
        assert_eq!(t.due(start + S), Due::HoldOver);
        assert!(!t.holding());
        // A client that is behind is never held.
        t.burst_sent(false);
        t.event_arrived();
        assert!(!t.holding());
        // A half-full queue ends a hold.
        t.burst_sent(true);
        t.event_arrived();
        t.release();
        assert!(!t.holding());
    }
}
