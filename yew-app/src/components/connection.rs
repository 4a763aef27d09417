//! The discreet live / reconnecting indicator in the header.

use yew::prelude::*;

use crate::state::Connection;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub state: Connection,
}

#[function_component(ConnectionBadge)]
pub fn connection_badge(props: &Props) -> Html {
    let (class, text) = match props.state {
        Connection::Live => ("conn live", "live"),
        Connection::Connecting => ("conn", "connecting…"),
        Connection::Reconnecting => ("conn down", "reconnecting…"),
    };
    html! {
        <span class={class} role="status" data-state={text.trim_end_matches('…').to_owned()}>
            <span class="dot" aria-hidden="true"></span>{ text }
        </span>
    }
}
