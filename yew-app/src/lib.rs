//! The web app: a Yew (client-side rendered) single-page app for phones first. Pure modules
//! (`state`, `text`, `lab`) build everywhere and are unit-tested natively; the modules that
//! touch the browser (`api`, `realtime`, `store`, `nav`, `hooks`, `components`, `pages`, `app`) build for
//! wasm32-unknown-unknown only.

pub mod lab;
pub mod state;
pub mod text;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod hooks;
#[cfg(target_arch = "wasm32")]
mod nav;
#[cfg(target_arch = "wasm32")]
mod pages;
#[cfg(target_arch = "wasm32")]
mod realtime;
#[cfg(target_arch = "wasm32")]
mod store;

/// Mounts the app on `<body>`.
#[cfg(target_arch = "wasm32")]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}
