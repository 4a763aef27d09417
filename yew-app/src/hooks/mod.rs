//! Custom hooks: what a component needs from the browser's observers, packaged once.

mod live_counts;
mod visible;

pub use live_counts::use_live_counts;
pub use visible::use_on_visible;
