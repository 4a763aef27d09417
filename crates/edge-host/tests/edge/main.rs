//! Integration tests of the edge host: one binary, one module per area.

mod abuse;
mod api;
mod cluster;
mod conformance;
mod differences;
mod durability;
mod failover;
mod host;
mod posts;
mod static_app;
mod support;
