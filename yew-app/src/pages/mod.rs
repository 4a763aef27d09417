//! The screens: sign in, the feed, the upload form, and the load lab.

pub mod feed;
pub mod lab;
pub mod sign_in;
pub mod upload;
