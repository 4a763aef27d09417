pub mod bench;
pub mod test;
pub mod up;
