//! Integration tests of the realtime hub: a real Redis (testkit), the hub started on port 0 via
//! `realtime_hub::run`, and a raw Engine.IO/Socket.IO v4 client over WebSocket.

mod client;
mod coalescing;
mod http;
mod js;
mod resilience;
mod rooms;
mod support;
