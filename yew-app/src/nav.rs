//! Which screen is up and its address: the load lab lives at `/lab`, everything else at `/`.

use wasm_bindgen::JsValue;

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Feed,
    Upload,
    /// The load lab, at `/lab`; open without signing in.
    Lab,
}

/// Where the load lab lives in the app.
const LAB_PATH: &str = "/lab";

/// The location bar's path.
pub fn path() -> String {
    web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_default()
}

/// The screen an address opens.
pub fn screen_at(path: &str) -> Screen {
    if path == LAB_PATH {
        Screen::Lab
    } else {
        Screen::Feed
    }
}

/// Shows `screen`'s address in the location bar (a history entry, so Back returns).
pub fn navigate(screen: Screen) {
    let to = if screen == Screen::Lab { LAB_PATH } else { "/" };
    if path() != to
        && let Some(history) = web_sys::window().and_then(|w| w.history().ok())
    {
        let _ = history.push_state_with_url(&JsValue::NULL, "", Some(to));
    }
}
