//! holdfast: a clustered HTTP(S) load balancer whose nodes share one Raft-replicated stick
//! table. This library holds everything the `holdfast` binary runs: configuration, the
//! cluster node, the admin API and the command-line interface.

pub mod admin;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod http;
pub mod import;
