//! Reusable pieces of the screens.

pub mod connection;
pub mod heart;
pub mod post_card;
pub mod toasts;
pub mod viewer;
