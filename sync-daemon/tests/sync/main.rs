//! Integration tests of the sync daemon against real Redis and real PostgreSQL, with events
//! written by the production Lua scripts.

mod admin;
mod cluster;
mod crash;
mod exactly_once;
mod outage;
mod posts;
mod rehydrate;
mod support;
mod through_edge;
