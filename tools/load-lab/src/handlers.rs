//! Socket.IO handlers of namespace `/`: the lab key check every connection passes first,
//! `lab:start` and `lab:stop` with acks, and the current state for every socket that connects.

use std::convert::Infallible;
use std::sync::Arc;

use lab_protocol::{self as lab, Ack, StartRequest};
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};

use crate::lab::{Lab, LabError};

/// Why a connection was refused; its text is the `connect_error` message the client gets.
#[derive(Debug, thiserror::Error)]
#[error(
    "this load lab needs its key: connect with auth {{ key }} (the app's own pages get it from \
     its /api/config)"
)]
pub struct KeyRefused;

/// The first connect middleware: the connection's auth payload must be `{"key": <the lab's
/// key>}`. Without it the socket never joins the namespace, so it gets no state, no
/// broadcasts and no event handlers (a refused socket's `lab:start` goes nowhere).
pub async fn authenticate(
    State(lab): State<Arc<Lab>>,
    TryData(auth): TryData<Value>,
) -> Result<(), KeyRefused> {
    let given = auth.ok();
    let key = given
        .as_ref()
        .and_then(|a| a.get("key"))
        .and_then(Value::as_str);
    if key.is_some_and(|k| lab.config().key.matches(k)) {
        Ok(())
    } else {
        tracing::info!(
            key_given = key.is_some(),
            "lab connection without its key refused"
        );
        Err(KeyRefused)
    }
}

/// The connect handler (runs after the client got its connect packet): the lab's state, so a
/// page that opens mid-run draws what happened so far.
pub async fn on_connect(s: SocketRef, State(lab): State<Arc<Lab>>) {
    if let Err(e) = s.emit(lab::STATE, &lab.state()) {
        tracing::debug!(error = %e, "lab:state not sent");
    }
}

/// Registers the event handlers as a connect middleware, before the connect packet goes out,
/// so an event emitted right after connecting is never missed (as in the realtime hub).
pub async fn register(s: SocketRef) -> Result<(), Infallible> {
    s.on(
        lab::START,
        |io: SocketIo,
         State(lab): State<Arc<Lab>>,
         TryData(data): TryData<Value>,
         ack: AckSender| async move {
            let reply = data
                .map_err(|e| LabError::Invalid(format!("unreadable payload: {e}")))
                .and_then(|v| {
                    // `null` or no payload: the lab's defaults.
                    if v.is_null() {
                        return Ok(StartRequest::default());
                    }
                    serde_json::from_value::<StartRequest>(v)
                        .map_err(|e| LabError::Invalid(format!("not a lab:start payload: {e}")))
                })
                .and_then(|req| lab.start(io, &req));
            answer(ack, reply.map(Some));
        },
    );
    s.on(
        lab::STOP,
        |State(lab): State<Arc<Lab>>, ack: AckSender| async move {
            answer(ack, lab.stop().map(|()| None));
        },
    );
    Ok(())
}

/// Sends the ack (a no-op when the client asked for none).
fn answer(ack: AckSender, reply: Result<Option<lab::RunInfo>, LabError>) {
    let body = match reply {
        Ok(run) => Ack {
            ok: true,
            run,
            error: None,
        },
        Err(e) => {
            tracing::debug!(error = %e, "lab request refused");
            Ack {
                ok: false,
                run: None,
                error: Some(e.body()),
            }
        }
    };
    if let Err(e) = ack.send(&body) {
        tracing::debug!(error = %e, "ack not sent");
    }
}
