//! Integration tests of the peer protocol over real TCP on 127.0.0.1: handshakes (secret
//! and mutual TLS), encryption, refusals, hostile input, and a 3-node openraft cluster.

mod cluster;
mod common;
mod encryption;
mod garbage;
mod handshake;
mod store;
mod tls;
