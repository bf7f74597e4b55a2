//! Traffic per server through the node answering, cumulative since it started: the stats
//! page turns successive polls into rates and recent percentiles.

use serde::{Deserialize, Serialize};

/// Upper bounds (ms) of the response-time buckets of [`ServerTraffic::latency`]; the
/// last bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [f64; 15] = [
    0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

/// One server's traffic through this node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTraffic {
    /// Backend name.
    pub backend: String,
    /// Server name.
    pub server: String,
    /// Answers by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub classes: [u64; 5],
    /// Response times: counts per bucket of [`LATENCY_BOUNDS_MS`], then the rest.
    pub latency: Vec<u64>,
    /// Request bytes received from clients (heads and bodies of known length).
    pub bytes_in: u64,
    /// Response bytes sent to clients (heads and bodies as framed).
    pub bytes_out: u64,
}
