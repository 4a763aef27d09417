pub mod app;
pub mod bench;
pub mod bench_realtime;
pub mod bench_spin;
pub mod bench_sync;
pub mod load;
pub mod test;
pub mod up;
