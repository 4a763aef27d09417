//! Integration tests of the realtime hub: a real Redis (testkit), the hub started on port 0 via
//! `realtime_hub::run`, a raw Engine.IO/Socket.IO v4 client over WebSocket, the official JS
//! client, and real likes through the release edge host (`edge`).

mod cluster;
mod coalescing;
mod edge;
mod heartbeat;
mod http;
mod js;
mod resilience;
mod rooms;
mod support;
mod through_edge;
