//! Live updates: the official `socket.io-client` (its ESM build, shipped beside the app and
//! found through the page's import map) bound with wasm-bindgen, and a context provider that
//! owns one socket. Components subscribe to the posts they show; the provider batches
//! subscriptions, re-subscribes everything after a reconnect (the ack's counts refresh what is
//! on screen) and turns hub events into reducer actions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use likes_core::PostId;
use likes_core::api::Post;
use likes_core::api::realtime::{
    LIKES_UPDATED, LikesUpdated, MAX_POSTS_PER_SOCKET, POSTS_CREATED, PostsAck, PostsRequest,
    SUBSCRIBE, UNSUBSCRIBE,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use yew::prelude::*;

use crate::state::{Action, Connection};
use crate::store::AppContext;

#[wasm_bindgen(raw_module = "socket.io-client")]
extern "C" {
    /// `io(url, options)`: a socket on namespace `/` with its own manager.
    #[wasm_bindgen(js_name = io)]
    pub(crate) fn connect(url: &str, options: &JsValue) -> Socket;

    pub(crate) type Socket;
    #[wasm_bindgen(method)]
    pub(crate) fn on(this: &Socket, event: &str, listener: &js_sys::Function);
    #[wasm_bindgen(method, getter)]
    pub(crate) fn connected(this: &Socket) -> bool;
    /// The manager, which reports reconnection attempts.
    #[wasm_bindgen(method, getter, js_name = io)]
    fn manager(this: &Socket) -> Manager;
    #[wasm_bindgen(method)]
    pub(crate) fn timeout(this: &Socket, ms: u32) -> Socket;
    #[wasm_bindgen(method, js_name = emitWithAck)]
    pub(crate) fn emit_with_ack(this: &Socket, event: &str, payload: &JsValue) -> js_sys::Promise;
    #[wasm_bindgen(method)]
    pub(crate) fn emit(this: &Socket, event: &str, payload: &JsValue);
    #[wasm_bindgen(method)]
    pub(crate) fn disconnect(this: &Socket);

    type Manager;
    #[wasm_bindgen(method, js_name = on)]
    fn on_manager(this: &Manager, event: &str, listener: &js_sys::Function);
}

/// How long a subscribe ack may take before the counts are refreshed on the next reconnect.
const ACK_TIMEOUT_MS: u32 = 5_000;
/// Subscriptions made within this many milliseconds go out as one message.
const BATCH_MS: u32 = 40;

type Listener = Closure<dyn FnMut(JsValue)>;

/// One socket and the posts the screen wants live counts for.
pub struct Realtime {
    socket: Socket,
    dispatch: Callback<Action>,
    /// How many mounted cards want each post (a post may be on screen twice briefly).
    wanted: RefCell<HashMap<PostId, u32>>,
    to_join: RefCell<Vec<PostId>>,
    to_leave: RefCell<Vec<PostId>>,
    flush: RefCell<Option<Timeout>>,
    listeners: RefCell<Vec<Listener>>,
    closed: Cell<bool>,
}

impl Realtime {
    fn open(url: &str, dispatch: Callback<Action>) -> Rc<Self> {
        let options = js_sys::Object::new();
        // Reconnect forever with the client's backoff, capped so recovery is quick.
        let _ = js_sys::Reflect::set(
            &options,
            &"reconnectionDelayMax".into(),
            &JsValue::from(5_000),
        );
        let this = Rc::new(Self {
            socket: connect(url, &options),
            dispatch,
            wanted: RefCell::default(),
            to_join: RefCell::default(),
            to_leave: RefCell::default(),
            flush: RefCell::default(),
            listeners: RefCell::default(),
            closed: Cell::new(false),
        });
        let weak = Rc::downgrade(&this);
        this.listen(false, "connect", {
            let weak = weak.clone();
            move |_| {
                if let Some(rt) = weak.upgrade() {
                    rt.dispatch
                        .emit(Action::ConnectionChanged(Connection::Live));
                    // Rooms belong to the old socket: join again; the ack refreshes counts
                    // that moved while we were away.
                    rt.to_leave.borrow_mut().clear();
                    let all: Vec<PostId> = rt.wanted.borrow().keys().copied().collect();
                    *rt.to_join.borrow_mut() = all;
                    rt.flush_now();
                }
            }
        });
        let reconnecting = {
            let weak = weak.clone();
            move |_| {
                if let Some(rt) = weak.upgrade()
                    && !rt.closed.get()
                {
                    rt.dispatch
                        .emit(Action::ConnectionChanged(Connection::Reconnecting));
                }
            }
        };
        this.listen(false, "disconnect", reconnecting.clone());
        this.listen(false, "connect_error", reconnecting.clone());
        this.listen(true, "reconnect_attempt", reconnecting);
        this.listen(false, LIKES_UPDATED, {
            let weak = weak.clone();
            move |payload| {
                if let (Some(rt), Some(u)) = (weak.upgrade(), from_js::<LikesUpdated>(&payload)) {
                    rt.dispatch
                        .emit(Action::Counts(HashMap::from([(u.post_id, u.likes)])));
                }
            }
        });
        this.listen(false, POSTS_CREATED, move |payload| {
            if let (Some(rt), Some(post)) = (weak.upgrade(), from_js::<Post>(&payload)) {
                rt.dispatch.emit(Action::PostCreated(post));
            }
        });
        this
    }

    fn listen(&self, on_manager: bool, event: &str, f: impl FnMut(JsValue) + 'static) {
        let closure = Closure::<dyn FnMut(JsValue)>::new(f);
        let function: &js_sys::Function = closure.as_ref().unchecked_ref();
        if on_manager {
            self.socket.manager().on_manager(event, function);
        } else {
            self.socket.on(event, function);
        }
        self.listeners.borrow_mut().push(closure);
    }

    /// The screen shows `post`: keep its count live.
    pub fn subscribe(self: &Rc<Self>, post: PostId) {
        let mut wanted = self.wanted.borrow_mut();
        let n = wanted.entry(post).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.to_leave.borrow_mut().retain(|p| *p != post);
            self.to_join.borrow_mut().push(post);
            drop(wanted);
            self.schedule();
        }
    }

    /// The screen no longer shows `post`.
    pub fn unsubscribe(self: &Rc<Self>, post: PostId) {
        let mut wanted = self.wanted.borrow_mut();
        let Some(n) = wanted.get_mut(&post) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            wanted.remove(&post);
            self.to_join.borrow_mut().retain(|p| *p != post);
            self.to_leave.borrow_mut().push(post);
            drop(wanted);
            self.schedule();
        }
    }

    fn schedule(self: &Rc<Self>) {
        if self.flush.borrow().is_some() {
            return;
        }
        let weak: Weak<Self> = Rc::downgrade(self);
        *self.flush.borrow_mut() = Some(Timeout::new(BATCH_MS, move || {
            if let Some(rt) = weak.upgrade() {
                rt.flush.borrow_mut().take();
                rt.flush_now();
            }
        }));
    }

    fn flush_now(self: &Rc<Self>) {
        // While disconnected nothing is sent: `connect` joins everything wanted at that time.
        if !self.socket.connected() {
            self.to_join.borrow_mut().clear();
            self.to_leave.borrow_mut().clear();
            return;
        }
        let leave = std::mem::take(&mut *self.to_leave.borrow_mut());
        if !leave.is_empty() {
            self.socket.emit(UNSUBSCRIBE, &posts_payload(&leave));
        }
        let join = std::mem::take(&mut *self.to_join.borrow_mut());
        for chunk in join.chunks(MAX_POSTS_PER_SOCKET) {
            let ack = self
                .socket
                .timeout(ACK_TIMEOUT_MS)
                .emit_with_ack(SUBSCRIBE, &posts_payload(chunk));
            let dispatch = self.dispatch.clone();
            spawn_local(async move {
                if let Ok(value) = JsFuture::from(ack).await
                    && let Some(PostsAck {
                        counts: Some(counts),
                        ..
                    }) = from_js::<PostsAck>(&value)
                    && !counts.is_empty()
                {
                    dispatch.emit(Action::Counts(counts.into_iter().collect()));
                }
            });
        }
    }

    fn close(&self) {
        self.closed.set(true);
        self.socket.disconnect();
    }
}

fn posts_payload(posts: &[PostId]) -> JsValue {
    let request = PostsRequest {
        posts: posts.to_vec(),
    };
    let json = serde_json::to_string(&request).unwrap_or_default();
    js_sys::JSON::parse(&json).unwrap_or(JsValue::NULL)
}

pub(crate) fn from_js<T: serde::de::DeserializeOwned>(value: &JsValue) -> Option<T> {
    let json = js_sys::JSON::stringify(value).ok()?;
    serde_json::from_str(&String::from(json)).ok()
}

/// What components get from the provider: the live socket, once the hub's URL is known.
#[derive(Clone, Default)]
pub struct RealtimeHandle(pub Option<Rc<Realtime>>);

impl PartialEq for RealtimeHandle {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

#[derive(Properties, PartialEq)]
pub struct ProviderProps {
    /// The hub's URL from `/api/config`; no socket until it is known.
    pub url: Option<AttrValue>,
    pub children: Html,
}

/// Owns the socket for as long as the app shows signed-in screens.
#[function_component(RealtimeProvider)]
pub fn realtime_provider(props: &ProviderProps) -> Html {
    let store = use_context::<AppContext>().expect("RealtimeProvider inside the app's store");
    let handle = use_state(RealtimeHandle::default);
    {
        let handle = handle.clone();
        let dispatch = store.dispatcher();
        use_effect_with(props.url.clone(), move |url| {
            let rt = url
                .as_ref()
                .map(|url| Realtime::open(url, Callback::from(move |a| dispatch.dispatch(a))));
            handle.set(RealtimeHandle(rt.clone()));
            move || {
                if let Some(rt) = rt {
                    rt.close();
                }
            }
        });
    }
    html! {
        <ContextProvider<RealtimeHandle> context={(*handle).clone()}>
            { props.children.clone() }
        </ContextProvider<RealtimeHandle>>
    }
}
