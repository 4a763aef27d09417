//! The store every component reaches through the context: the reducer of `state` as Yew sees
//! it, and the session kept on the device.

use std::rc::Rc;

use gloo_storage::{LocalStorage, Storage};
use likes_core::api::User;
use serde::{Deserialize, Serialize};
use yew::prelude::*;

use crate::state::{Action, AppState, Session};

/// The reducer of [`AppState`] as Yew sees it.
#[derive(Debug, Default, PartialEq)]
pub struct Store(pub AppState);

impl Reducible for Store {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let state = Rc::try_unwrap(self).map_or_else(|rc| rc.0.clone(), |s| s.0);
        Rc::new(Store(state.reduce(action)))
    }
}

/// Every component reaches the store through this context.
pub type AppContext = UseReducerHandle<Store>;

/// Where the session lives on this device.
const SESSION_KEY: &str = "likes.session";

#[derive(Serialize, Deserialize)]
struct StoredSession {
    token: String,
    user: User,
}

/// Keeps `session` on the device (or forgets it).
pub fn store_session(session: Option<&Session>) {
    match session {
        Some(s) => {
            let _ = LocalStorage::set(
                SESSION_KEY,
                StoredSession {
                    token: s.token.clone(),
                    user: s.user.clone(),
                },
            );
        }
        None => LocalStorage::delete(SESSION_KEY),
    }
}

/// The session kept by [`store_session`], if any.
pub fn stored_session() -> Option<Session> {
    LocalStorage::get::<StoredSession>(SESSION_KEY)
        .ok()
        .map(|s| Session {
            token: s.token,
            user: s.user,
        })
}
