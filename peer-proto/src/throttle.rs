//! Repeated warnings folded: under a connection flood the peer port would otherwise write
//! a line per refused connection (thousands a minute). The first [`BURST`] of a window
//! are logged; later ones are counted and reported with the next line logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window over which warnings are counted.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Warnings written per window before the rest are folded.
pub const BURST: u32 = 5;

/// One kind of warning's throttle.
pub struct Throttle {
    state: Mutex<State>,
}

struct State {
    since: Option<Instant>,
    logged: u32,
    folded: u64,
}

impl Throttle {
    /// A throttle that has let nothing through yet.
    pub const fn new() -> Throttle {
        Throttle {
            state: Mutex::new(State {
                since: None,
                logged: 0,
                folded: 0,
            }),
        }
    }

    /// An occurrence: `Some(n)` when it is to be logged, with `n` occurrences folded
    /// since the last line; `None` when it is only counted.
    pub fn note(&self) -> Option<u64> {
        let Ok(mut state) = self.state.lock() else {
            return Some(0);
        };
        if state.since.is_none_or(|at| at.elapsed() >= WINDOW) {
            state.since = Some(Instant::now());
            state.logged = 0;
        }
        if state.logged < BURST {
            state.logged += 1;
            return Some(std::mem::take(&mut state.folded));
        }
        state.folded += 1;
        None
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_with_a_count() {
        let t = Throttle::new();
        for _ in 0..BURST {
            assert_eq!(t.note(), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(t.note(), None);
        }
        t.state.lock().unwrap().since = Some(Instant::now() - WINDOW);
        assert_eq!(
            t.note(),
            Some(1000),
            "the next window reports what was folded"
        );
    }
}
