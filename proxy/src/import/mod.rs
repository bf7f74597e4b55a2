//! Importing another load balancer's configuration: `haproxy.cfg` read as HAProxy reads
//! it, translated into a holdfast configuration, with every line that was not translated
//! (or only approximately) named by its number and why.

mod backend;
mod frontend;
pub mod haproxy_cfg;
pub mod model;
mod translate;
mod values;

pub use translate::{Note, Report, translate};

#[cfg(test)]
mod tests;
