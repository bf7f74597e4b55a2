//! Repeated warnings folded into one line: under a connection flood the peer port would
//! otherwise write a line per refused connection (thousands a minute). The first one is
//! logged; later ones within the window are counted and reported with the next line.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a throttled warning is written at most.
pub const WINDOW: Duration = Duration::from_secs(10);

/// One kind of warning's throttle.
pub struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// A throttle that has let nothing through yet.
    pub const fn new() -> Throttle {
        Throttle {
            state: Mutex::new((None, 0)),
        }
    }

    /// An occurrence: `Some(n)` when it is to be logged, with `n` occurrences folded
    /// since the last line; `None` when it is only counted.
    pub fn note(&self) -> Option<u64> {
        let Ok(mut state) = self.state.lock() else {
            return Some(0);
        };
        let (last, folded) = &mut *state;
        match last {
            Some(at) if at.elapsed() < WINDOW => {
                *folded += 1;
                None
            }
            _ => {
                *last = Some(Instant::now());
                Some(std::mem::take(folded))
            }
        }
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
        assert_eq!(t.note(), Some(0));
        for _ in 0..1000 {
            assert_eq!(t.note(), None);
        }
        *t.state.lock().unwrap() = (Some(Instant::now() - WINDOW), 1000);
        assert_eq!(t.note(), Some(1000));
    }
}
