//! New post: take or pick a photo, see it, write a caption, watch the progress bar; the
//! server's refusals (413, 415, 422, 429) come back as sentences saying what to do.

use likes_core::api::{FeedSort, MAX_CAPTION_CHARS};
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlInputElement, HtmlTextAreaElement, Url};
use yew::prelude::*;

use crate::api;
use crate::nav::Screen;
use crate::state::Action;
use crate::store::AppContext;
use crate::text;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub go: Callback<Screen>,
}

/// The picked file and its preview URL (revoked when replaced or dropped).
struct Picked {
    file: web_sys::File,
    preview: String,
}

impl Drop for Picked {
    fn drop(&mut self) {
        let _ = Url::revoke_object_url(&self.preview);
    }
}

#[function_component(UploadPage)]
pub fn upload_page(props: &Props) -> Html {
    let store = use_context::<AppContext>().expect("inside the store");
    let picked = use_state(|| None::<std::rc::Rc<Picked>>);
    let caption = use_state(String::new);
    let progress = use_state(|| None::<f64>);
    let error = use_state(|| None::<String>);

    let onpick = {
        let picked = picked.clone();
        let error = error.clone();
        move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let file = input.files().and_then(|f| f.get(0));
            if let Some(file) = file
                && let Ok(preview) = Url::create_object_url_with_blob(&file)
            {
                error.set(None);
                picked.set(Some(std::rc::Rc::new(Picked { file, preview })));
            }
        }
    };
    let oncaption = {
        let caption = caption.clone();
        move |e: InputEvent| {
            let area: HtmlTextAreaElement = e.target_unchecked_into();
            caption.set(area.value());
        }
    };
    let busy = progress.is_some();
    let onsubmit = {
        let (picked, caption, progress, error) = (
            picked.clone(),
            caption.clone(),
            progress.clone(),
            error.clone(),
        );
        let go = props.go.clone();
        let store = store.clone();
        move |e: SubmitEvent| {
            e.prevent_default();
            if progress.is_some() {
                return;
            }
            let Some(p) = (*picked).clone() else {
                error.set(Some("Choose a photo first.".into()));
                return;
            };
            let Some(token) = store.0.session.as_ref().map(|s| s.token.clone()) else {
                return;
            };
            error.set(None);
            progress.set(Some(0.0));
            let (caption, progress, error, go, store) = (
                (*caption).clone(),
                progress.clone(),
                error.clone(),
                go.clone(),
                store.clone(),
            );
            spawn_local(async move {
                let bar = progress.setter();
                let result =
                    api::upload(&token, &p.file, &caption, move |f| bar.set(Some(f))).await;
                progress.set(None);
                match result {
                    Ok(post) => {
                        if store.0.sort != FeedSort::New {
                            store.dispatch(Action::SortSelected(FeedSort::New));
                        }
                        store.dispatch(Action::Uploaded(post));
                        go.emit(Screen::Feed);
                    }
                    Err(e) => error.set(Some(text::upload_error(
                        e.status,
                        e.problem.as_ref(),
                        e.retry_after.as_deref(),
                    ))),
                }
            });
        }
    };
    let go = props.go.clone();
    let left = MAX_CAPTION_CHARS as i64 - caption.chars().count() as i64;

    html! {
        <>
        <header class="bar">
            <button type="button" class="quiet small" onclick={move |_| go.emit(Screen::Feed)}>
                { "Cancel" }
            </button>
            <h1 class="title">{ "New post" }</h1>
            <span class="spacer"></span>
        </header>
        <main class="upload">
            <form onsubmit={onsubmit}>
                <div class="pickers">
                    <label class="picker">
                        { "Take a photo" }
                        <input type="file" accept="image/*" capture="environment"
                            class="visually-hidden" onchange={onpick.clone()} disabled={busy} />
                    </label>
                    <label class="picker">
                        { "Choose a photo" }
                        <input type="file" accept="image/*" name="image"
                            class="visually-hidden" onchange={onpick} disabled={busy} />
                    </label>
                </div>
                if let Some(p) = &*picked {
                    <img class="preview" src={p.preview.clone()} alt="Preview of the photo to post" />
                } else {
                    <div class="preview empty" aria-hidden="true">{ "No photo yet" }</div>
                }
                <label for="caption">{ "Caption" }</label>
                <textarea id="caption" rows="3" maxlength={MAX_CAPTION_CHARS.to_string()}
                    value={(*caption).clone()} oninput={oncaption} disabled={busy}
                    aria-describedby="caption-left" />
                <p id="caption-left" class={classes!("hint", (left < 20).then_some("warn"))}>
                    { text::count(left.max(0) as u64, "character left", "characters left") }
                </p>
                if let Some(f) = *progress {
                    <label for="progress">{ format!("Uploading… {}%", (f * 100.0).round()) }</label>
                    <progress id="progress" max="1" value={f.to_string()}></progress>
                }
                if let Some(msg) = &*error {
                    <p class="error" role="alert">{ msg }</p>
                }
                <button type="submit" class="primary" disabled={busy || picked.is_none()}>
                    { if busy { "Posting…" } else { "Share" } }
                </button>
            </form>
        </main>
        </>
    }
}
