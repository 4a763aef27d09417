//! Entry point: mounts the app on `<body>` in the browser; natively there is nothing to run
//! (the native build exists for the unit tests of the pure modules).

fn main() {
    #[cfg(target_arch = "wasm32")]
    yew_app::start();
}
