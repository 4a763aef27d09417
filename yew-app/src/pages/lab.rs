//! The Load lab (`/lab`): start a load run on the lab server (a preset, or users, posts, rate
//! and duration), watch throughput, p99 latency and sync lag move, stop it, and read the
//! verdict. Talks to the lab over its own Socket.IO connection, with the same client binding
//! as the live counts, presenting the lab's key (from `/api/config`) in the connect auth.

use std::rc::Rc;

use lab_protocol::{self as lab, Ack, Done, LabState, Progress, StartRequest, Tick};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::lab::{
    LabAction, LabView, PLOT_H, PLOT_W, figure, fixed, nice_max, outcome_word, polyline,
    verdict_line,
};
use crate::nav::Screen;
use crate::realtime::{self, Socket, from_js};

#[wasm_bindgen]
extern "C" {
    /// Whether the client will try to connect again (false once the server refused it).
    #[wasm_bindgen(method, getter)]
    fn active(this: &Socket) -> bool;
}

/// How long a start or stop may take to be acknowledged.
const ACK_TIMEOUT_MS: u32 = 10_000;
const PRESETS: [(&str, &str); 3] = [("10k", "10k"), ("100k", "100k"), ("1m", "1M")];

/// The reducer of [`LabView`] as Yew sees it.
#[derive(Default, PartialEq)]
struct Store(LabView);

impl Reducible for Store {
    type Action = LabAction;

    fn reduce(self: Rc<Self>, action: LabAction) -> Rc<Self> {
        let view = Rc::try_unwrap(self).map_or_else(|rc| rc.0.clone(), |s| s.0);
        Rc::new(Store(view.reduce(action)))
    }
}

/// The socket to the lab and the listeners it calls (kept alive with it).
struct LabSocket {
    socket: Socket,
    _listeners: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl LabSocket {
    fn open(url: &str, key: Option<&str>, dispatch: Callback<LabAction>) -> Self {
        let options = js_sys::Object::new();
        // Its own connection, never a cached one from an earlier visit to the page.
        let _ = js_sys::Reflect::set(&options, &"forceNew".into(), &JsValue::TRUE);
        // The lab refuses a connection without its key; sent in the connect packet, not the
        // URL, so it stays out of logs and history.
        if let Some(key) = key {
            let auth = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&auth, &"key".into(), &key.into());
            let _ = js_sys::Reflect::set(&options, &"auth".into(), &auth);
        }
        let socket = realtime::connect(url, &options);
        let mut listeners = Vec::new();
        let mut on = |event: &str, f: Box<dyn FnMut(JsValue)>| {
            let closure = Closure::<dyn FnMut(JsValue)>::new(f);
            socket.on(event, closure.as_ref().unchecked_ref());
            listeners.push(closure);
        };
        let d = dispatch.clone();
        on(
            "connect",
            Box::new(move |_| d.emit(LabAction::Connected(true))),
        );
        let d = dispatch.clone();
        on(
            "disconnect",
            Box::new(move |_| d.emit(LabAction::Connected(false))),
        );
        // A refusal by the lab (no key, a stale key) is final: the client stops retrying, which
        // `active` tells apart from a network error it retries by itself.
        let d = dispatch.clone();
        let s = JsValue::from(&*socket);
        on(
            "connect_error",
            Box::new(move |e| {
                if s.unchecked_ref::<Socket>().active() {
                    return;
                }
                let why = js_sys::Reflect::get(&e, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
                    .unwrap_or_default();
                d.emit(LabAction::Refused(format!(
                    "The lab refused this page: {why}. Reload to try again."
                )));
            }),
        );
        let d = dispatch.clone();
        on(
            lab::STATE,
            Box::new(move |v| {
                if let Some(s) = from_js::<LabState>(&v) {
                    d.emit(LabAction::State(s));
                }
            }),
        );
        let d = dispatch.clone();
        on(
            lab::PROGRESS,
            Box::new(move |v| {
                if let Some(p) = from_js::<Progress>(&v) {
                    d.emit(LabAction::Progress(p));
                }
            }),
        );
        on(
            lab::DONE,
            Box::new(move |v| {
                if let Some(done) = from_js::<Done>(&v) {
                    dispatch.emit(LabAction::Done(done));
                }
            }),
        );
        Self {
            socket,
            _listeners: listeners,
        }
    }

    /// Sends `event` and reports a refusal (or silence) as the lab's words.
    fn request(&self, event: &str, payload: &impl Serialize, dispatch: Callback<LabAction>) {
        let json = serde_json::to_string(payload).unwrap_or_else(|_| "{}".into());
        let payload = js_sys::JSON::parse(&json).unwrap_or(JsValue::NULL);
        let ack = self
            .socket
            .timeout(ACK_TIMEOUT_MS)
            .emit_with_ack(event, &payload);
        spawn_local(async move {
            let refused = match JsFuture::from(ack).await.map(|v| from_js::<Ack>(&v)) {
                Ok(Some(a)) if a.ok => return,
                Ok(Some(Ack { error: Some(e), .. })) => format!("{}: {}", e.title, e.detail),
                Ok(_) => "The lab gave an answer this page does not understand.".into(),
                Err(_) => "The lab did not answer in time.".into(),
            };
            dispatch.emit(LabAction::Refused(refused));
        });
    }
}

impl Drop for LabSocket {
    fn drop(&mut self) {
        self.socket.disconnect();
    }
}

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The lab's URL from `/api/config`: `None` while it loads, `Some(None)` when the server
    /// has no lab.
    pub url: Option<Option<AttrValue>>,
    /// The key the lab asks of every connection, from the same `/api/config`.
    pub lab_key: Option<AttrValue>,
    pub go: Callback<Screen>,
}

fn value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value().trim().to_owned())
        .unwrap_or_default()
}

/// The settings typed in the form (an empty field keeps its placeholder, the lab's default),
/// or what is wrong with them. The fields are left uncontrolled so what was typed stays.
fn custom(
    users: &NodeRef,
    posts: &NodeRef,
    rate: &NodeRef,
    secs: &NodeRef,
) -> Result<StartRequest, String> {
    let number = |node: &NodeRef, what: &str| {
        let typed = value(node);
        let typed = if typed.is_empty() {
            node.cast::<HtmlInputElement>()
                .map(|i| i.placeholder())
                .unwrap_or_default()
        } else {
            typed
        };
        typed
            .parse::<u64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("Enter a whole number of {what}, 1 or more."))
    };
    Ok(StartRequest {
        users: Some(number(users, "users")?),
        posts: Some(u32::try_from(number(posts, "posts")?).unwrap_or(u32::MAX)),
        rate: Some(number(rate, "requests per second")? as f64),
        duration_secs: Some(number(secs, "seconds")? as f64),
        ..StartRequest::default()
    })
}

/// One live plot: lines (class, series) over the run's time, with the latest figure.
fn plot(
    title: &str,
    now: String,
    y_max: f64,
    x_max: f64,
    lines: Vec<(&'static str, Vec<(f64, f64)>)>,
) -> Html {
    html! {
        <figure class="plot">
            <figcaption><span>{ title }</span><strong>{ now }</strong></figcaption>
            <svg viewBox={format!("0 0 {PLOT_W} {PLOT_H}")} preserveAspectRatio="none"
                role="img" aria-label={format!("{title} over time")}>
                { for lines.into_iter().map(|(class, series)| html! {
                    <polyline class={class} vector-effect="non-scaling-stroke"
                        points={polyline(&series, x_max, y_max)} />
                }) }
            </svg>
            <span class="axis">{ format!("0 – {}", figure(y_max)) }</span>
        </figure>
    }
}

fn plots(v: &LabView) -> Html {
    let x = v.x_max();
    let last = v.ticks.last().cloned().unwrap_or_default();
    let rate = nice_max(
        v.ticks
            .iter()
            .map(|t| t.target_rate.max(t.achieved_rate))
            .fold(0.0, f64::max),
    );
    let p99 = nice_max(v.ticks.iter().map(|t| t.p99_ms).fold(0.0, f64::max));
    let lag = v.series(|t: &Tick| t.sync_lag_s);
    let lag_max = nice_max(lag.iter().map(|(_, l)| *l).fold(0.0, f64::max));
    html! {
        <div class="plots" data-ticks={v.ticks.len().to_string()}>
            { plot("Throughput (req/s)", format!("{} of {}", fixed(last.achieved_rate, 0), fixed(last.target_rate, 0)), rate, x, vec![
                ("target", v.series(|t| Some(t.target_rate))),
                ("line", v.series(|t| Some(t.achieved_rate))),
            ]) }
            { plot("p99 latency (ms)", fixed(last.p99_ms, 1), p99, x, vec![
                ("line", v.series(|t| Some(t.p99_ms))),
            ]) }
            { plot("Sync lag (s)", last.sync_lag_s.map_or("not sampled".into(), |l| fixed(l, 2)), lag_max, x, vec![
                ("line", lag),
            ]) }
            <p class="hint">{ format!("{} requests, {} errors, {} sockets", last.requests, last.errors, last.sockets) }</p>
        </div>
    }
}

fn verdict(done: &Done) -> Html {
    let word = outcome_word(done.outcome);
    html! {
        <section class={classes!("verdict", word.to_lowercase())} aria-live="polite">
            <h2>{ "Verdict: " }<strong data-testid="verdict">{ word }</strong></h2>
            if let Some(e) = &done.error {
                <p>{ format!("{}: {}", e.title, e.detail) }</p>
            }
            if let Some(s) = &done.summary {
                <p data-testid="verdict-line">{ verdict_line(s) }</p>
                <p class="hint">{ format!(
                    "{}/s of {}/s · p50 {} ms · p99 {} ms · delivery p99 {} ms · sync lag max {} · {} errors",
                    fixed(s.achieved_rate, 0), fixed(s.target_rate, 0), fixed(s.p50_ms, 1),
                    fixed(s.p99_ms, 1), fixed(s.delivery_p99_ms, 0),
                    s.sync_lag_max_s.map_or("n/a".into(), |l| format!("{} s", fixed(l, 2))), s.errors,
                ) }</p>
                <details><summary>{ "Report" }</summary><pre>{ &s.markdown }</pre></details>
            }
        </section>
    }
}

#[function_component(LabPage)]
pub fn lab_page(props: &Props) -> Html {
    let store = use_reducer(Store::default);
    let socket = use_state(|| None::<Rc<LabSocket>>);
    let url = props.url.clone().flatten();
    {
        let socket = socket.clone();
        let dispatcher = store.dispatcher();
        use_effect_with((url.clone(), props.lab_key.clone()), move |(url, key)| {
            let opened = url.as_ref().map(|u| {
                Rc::new(LabSocket::open(
                    u,
                    key.as_deref(),
                    Callback::from(move |a| dispatcher.dispatch(a)),
                ))
            });
            socket.set(opened);
            move || socket.set(None)
        });
    }
    let preset = use_state(|| None::<&'static str>);
    let (users, posts, rate, secs) = (
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
    );
    let v = &store.0;
    let dispatch = {
        let store = store.clone();
        Callback::from(move |a| store.dispatch(a))
    };

    let onsubmit = {
        let (socket, preset, dispatch) = (socket.clone(), preset.clone(), dispatch.clone());
        let (users, posts, rate, secs) = (users.clone(), posts.clone(), rate.clone(), secs.clone());
        move |e: SubmitEvent| {
            e.prevent_default();
            let Some(s) = &*socket else { return };
            let req = match *preset {
                Some(p) => Ok(StartRequest {
                    preset: Some(p.to_owned()),
                    ..StartRequest::default()
                }),
                None => custom(&users, &posts, &rate, &secs),
            };
            match req {
                Ok(req) => s.request(lab::START, &req, dispatch.clone()),
                Err(why) => dispatch.emit(LabAction::Refused(why)),
            }
        }
    };
    let onstop = {
        let (socket, dispatch) = (socket.clone(), dispatch.clone());
        move |_| {
            if let Some(s) = &*socket {
                s.request(lab::STOP, &serde_json::json!({}), dispatch.clone());
            }
        }
    };
    let choice = |p: Option<&'static str>, label: &'static str| {
        let on = *preset == p;
        let preset = preset.clone();
        html! {
            <button type="button" class={classes!("tab", on.then_some("on"))} aria-pressed={on.to_string()}
                onclick={move |_| preset.set(p)}>{ label }</button>
        }
    };
    let go = props.go.clone();
    let disabled_here = props.url == Some(None) || v.enabled == Some(false);

    html! {
        <>
        <header class="bar">
            <button type="button" class="quiet small" onclick={move |_| go.emit(Screen::Feed)}>{ "← Feed" }</button>
            <h1 class="title">{ "Load lab" }</h1>
            <span class="spacer"></span>
            if url.is_some() {
                <span class={classes!("conn", v.connected.then_some("live"))} role="status">
                    <span class="dot" aria-hidden="true"></span>{ if v.connected { "connected" } else { "connecting…" } }
                </span>
            }
        </header>
        <main class="lab">
            if disabled_here {
                <p class="note" role="status">{ "The load lab is disabled on this server." }</p>
            } else if props.url.is_none() || v.enabled.is_none() {
                if let Some(why) = &v.refused {
                    <p class="error" role="alert">{ why }</p>
                } else {
                    <p class="note" role="status">{ "Loading…" }</p>
                }
            } else {
                <form onsubmit={onsubmit}>
                    <fieldset class="presets" disabled={v.running}>
                        <legend>{ "Scenario" }</legend>
                        <div class="tabs">
                            { choice(None, "Custom") }
                            { for PRESETS.iter().map(|(p, label)| choice(Some(*p), label)) }
                        </div>
                        if preset.is_none() {
                            <div class="fields">
                                <label>{ "Users" }<input ref={users} type="text" placeholder="1000" inputmode="numeric" /></label>
                                <label>{ "Posts" }<input ref={posts} type="text" placeholder="100" inputmode="numeric" /></label>
                                <label>{ "Rate (req/s)" }<input ref={rate} type="text" placeholder="500" inputmode="decimal" /></label>
                                <label>{ "Duration (s)" }<input ref={secs} type="text" placeholder="10" inputmode="decimal" /></label>
                            </div>
                        }
                    </fieldset>
                    if v.running {
                        <button type="button" class="primary" onclick={onstop}>{ "Stop" }</button>
                    } else {
                        <button type="submit" class="primary" disabled={!v.connected}>{ "Start" }</button>
                    }
                </form>
                if let Some(why) = &v.refused {
                    <p class="error" role="alert">{ why }</p>
                }
                if let Some(r) = &v.run {
                    <p class="hint">{ format!(
                        "{} users, {} posts, {} sockets, {} req/s for {} s after a {} s ramp, {}",
                        r.users, r.posts, r.sockets, fixed(r.rate, 0), fixed(r.duration_secs, 0),
                        fixed(r.ramp_secs, 0), r.popularity,
                    ) }</p>
                }
                if v.running {
                    <p class="status" role="status" data-testid="phase">{
                        match (&v.step, &v.phase) {
                            (Some((what, done, total)), _) => format!("{what}: {done} of {total}"),
                            (None, Some(p)) => format!("Phase: {p}"),
                            (None, None) => "Starting…".to_owned(),
                        }
                    }</p>
                }
                { for v.notes.iter().map(|n| html! { <p class="hint warn">{ n }</p> }) }
                if !v.ticks.is_empty() {
                    { plots(v) }
                }
                if let (false, Some(done)) = (v.running, &v.last) {
                    { verdict(done) }
                }
            }
        </main>
        </>
    }
}
