//! The app's state and the one reducer that changes it. Everything the server and the hub
//! tell the app, and everything the person does, becomes an [`Action`]; [`AppState::reduce`]
//! is pure, so the optimistic-like, paging and live-count rules are unit-tested natively.

use std::collections::HashMap;

use likes_core::PostId;
use likes_core::api::{FeedPage, FeedSort, LikeResponse, Post, User};

/// The person signed in on this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: String,
    pub user: User,
}

/// What the Socket.IO connection is doing, shown discreetly in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connection {
    /// First connection attempt (or no realtime URL yet).
    #[default]
    Connecting,
    /// Connected: counts move live.
    Live,
    /// Lost; socket.io-client is retrying with backoff.
    Reconnecting,
}

/// A like or unlike sent to the server and not answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Which request this is; only the newest request's answer clears it.
    pub seq: u64,
    /// The state the person asked for.
    pub liked: bool,
}

/// A post in the feed with what the server last said about its likes, plus any like in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    pub post: Post,
    /// The server's count (from the feed, a like response or the hub).
    pub likes: u64,
    /// Whether the server says the person likes it.
    pub liked: bool,
    /// Whether the person liked it when the post was loaded (its `recent_likers` may name them).
    pub liked_at_load: bool,
    pub pending: Option<Pending>,
}

impl FeedItem {
    fn new(post: Post) -> Self {
        let liked = post.liked_by_me.unwrap_or(false);
        Self {
            likes: post.likes,
            liked,
            liked_at_load: liked,
            post,
            pending: None,
        }
    }

    /// The heart state to show: the person's pending wish, else the server's.
    pub fn shown_liked(&self) -> bool {
        self.pending.map_or(self.liked, |p| p.liked)
    }

    /// The count to show: the server's, moved by the pending wish when it differs from the
    /// server's state.
    pub fn shown_likes(&self) -> u64 {
        match self.pending {
            Some(p) if p.liked && !self.liked => self.likes + 1,
            Some(p) if !p.liked && self.liked => self.likes.saturating_sub(1),
            _ => self.likes,
        }
    }
}

/// A short message at the bottom of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub id: u64,
    pub text: String,
}

/// Everything the app shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppState {
    pub session: Option<Session>,
    pub sort: FeedSort,
    pub items: Vec<FeedItem>,
    pub next_cursor: Option<String>,
    /// Whether the feed has been asked for its first page since the last reset.
    pub started: bool,
    pub loading: bool,
    /// Why the last page failed, shown with a retry button.
    pub load_error: Option<String>,
    /// Bumped whenever the list is reset, so a page answering an older request is dropped.
    pub generation: u64,
    /// Posts announced by the hub and not shown yet, newest first (the "1 new post" pill).
    pub incoming: Vec<Post>,
    pub connection: Connection,
    pub toasts: Vec<Toast>,
    next_id: u64,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            session: None,
            sort: FeedSort::New,
            items: Vec::new(),
            next_cursor: None,
            started: false,
            loading: false,
            load_error: None,
            generation: 0,
            incoming: Vec::new(),
            connection: Connection::default(),
            toasts: Vec::new(),
            next_id: 1,
        }
    }
}

/// Everything that can happen to the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SignedIn(Session),
    SignedOut,
    /// A tab was picked (or the same tab again: a refresh).
    SortSelected(FeedSort),
    /// The next page is being fetched for `generation`.
    PageRequested {
        generation: u64,
    },
    PageLoaded {
        generation: u64,
        page: FeedPage,
    },
    PageFailed {
        generation: u64,
        message: String,
    },
    /// The person asked to try the failed page again.
    Retry,
    /// The hub announced a post.
    PostCreated(Post),
    /// The newest posts, fetched after a reconnect: those not seen yet join the pill, since
    /// their `posts:created` went to a socket that was down.
    CaughtUp(Vec<Post>),
    /// The person tapped the pill: show what arrived.
    IncomingShown,
    /// The person's own upload succeeded.
    Uploaded(Post),
    /// A like (`liked: true`) or unlike sent as request `seq`.
    LikeSent {
        post: PostId,
        liked: bool,
        seq: u64,
    },
    LikeConfirmed {
        seq: u64,
        response: LikeResponse,
    },
    LikeFailed {
        post: PostId,
        seq: u64,
        message: String,
    },
    /// Counts from the hub (`likes:updated`, or a subscribe ack after a reconnect).
    Counts(HashMap<PostId, u64>),
    ConnectionChanged(Connection),
    ToastShown(String),
    ToastDismissed(u64),
}

impl AppState {
    /// The state after `action`.
    pub fn reduce(mut self, action: Action) -> Self {
        match action {
            Action::SignedIn(session) => {
                // Another person: `liked_by_me` of every loaded post is someone else's.
                self.session = Some(session);
                self.reset_feed();
            }
            Action::SignedOut => {
                self.session = None;
                self.reset_feed();
            }
            Action::SortSelected(sort) => {
                self.sort = sort;
                self.reset_feed();
            }
            Action::PageRequested { generation } if generation == self.generation => {
                self.started = true;
                self.loading = true;
                self.load_error = None;
            }
            Action::PageRequested { .. } => {}
            Action::PageLoaded { generation, page } if generation == self.generation => {
                self.loading = false;
                self.next_cursor = page.next_cursor;
                for post in page.posts {
                    // `top` pages may repeat a post that moved; the first sighting wins.
                    if !self.items.iter().any(|i| i.post.id == post.id) {
                        self.incoming.retain(|p| p.id != post.id);
                        self.items.push(FeedItem::new(post));
                    }
                }
            }
            Action::PageFailed {
                generation,
                message,
            } if generation == self.generation => {
                self.loading = false;
                self.load_error = Some(message);
                // A failed first page is retried from the start (there is no cursor yet).
                if self.items.is_empty() {
                    self.started = false;
                }
            }
            Action::PageLoaded { .. } | Action::PageFailed { .. } => {}
            Action::Retry => self.load_error = None,
            Action::PostCreated(post) => {
                let known = self.items.iter().any(|i| i.post.id == post.id)
                    || self.incoming.iter().any(|p| p.id == post.id);
                // Only `new` shows posts by time; a new post has no likes, so `top` ignores it.
                if !known && self.sort == FeedSort::New && self.started {
                    self.incoming.insert(0, post);
                }
            }
            Action::CaughtUp(posts) => {
                for post in posts {
                    self = self.reduce(Action::PostCreated(post));
                }
                self.incoming.sort_by_key(|p| std::cmp::Reverse(p.id));
            }
            Action::IncomingShown => {
                let incoming = std::mem::take(&mut self.incoming);
                let mut items: Vec<FeedItem> = incoming.into_iter().map(FeedItem::new).collect();
                items.sort_by_key(|i| std::cmp::Reverse(i.post.id));
                items.append(&mut self.items);
                self.items = items;
            }
            Action::Uploaded(mut post) => {
                self.incoming.retain(|p| p.id != post.id);
                if self.sort == FeedSort::New && !self.items.iter().any(|i| i.post.id == post.id) {
                    post.liked_by_me.get_or_insert(false);
                    self.items.insert(0, FeedItem::new(post));
                }
            }
            Action::LikeSent { post, liked, seq } => {
                if let Some(item) = self.item_mut(post) {
                    item.pending = Some(Pending { seq, liked });
                }
            }
            Action::LikeConfirmed { seq, response } => {
                if let Some(item) = self.item_mut(response.post_id) {
                    item.likes = response.likes;
                    item.liked = response.liked;
                    if item.pending.is_some_and(|p| p.seq == seq) {
                        item.pending = None;
                    }
                }
            }
            Action::LikeFailed { post, seq, message } => {
                if let Some(item) = self.item_mut(post)
                    && item.pending.is_some_and(|p| p.seq == seq)
                {
                    // Roll back to what the server last said.
                    item.pending = None;
                }
                self.push_toast(message);
            }
            Action::Counts(counts) => {
                for item in &mut self.items {
                    if let Some(&likes) = counts.get(&item.post.id) {
                        item.likes = likes;
                    }
                }
            }
            Action::ConnectionChanged(connection) => self.connection = connection,
            Action::ToastShown(text) => self.push_toast(text),
            Action::ToastDismissed(id) => self.toasts.retain(|t| t.id != id),
        }
        self
    }

    /// Whether another page should be fetched now.
    pub fn wants_more(&self) -> bool {
        !self.loading && self.load_error.is_none() && (!self.started || self.next_cursor.is_some())
    }

    fn reset_feed(&mut self) {
        self.items.clear();
        self.incoming.clear();
        self.next_cursor = None;
        self.started = false;
        self.loading = false;
        self.load_error = None;
        self.generation += 1;
    }

    fn item_mut(&mut self, id: PostId) -> Option<&mut FeedItem> {
        self.items.iter_mut().find(|i| i.post.id == id)
    }

    fn push_toast(&mut self, text: String) {
        let id = self.next_id;
        self.next_id += 1;
        self.toasts.push(Toast { id, text });
        // A burst of failures shows the latest few, not a wall of messages.
        if self.toasts.len() > 3 {
            self.toasts.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_core::UserId;
    use likes_core::api::PostImage;

    fn id(n: u64) -> PostId {
        PostId::new(n).expect("nonzero")
    }

    fn post(n: u64, likes: u64, liked: Option<bool>) -> Post {
        Post {
            id: id(n),
            author: User {
                id: UserId::new(1).expect("nonzero"),
                name: "ann".into(),
            },
            caption: format!("post {n}"),
            image: PostImage::new("ab".repeat(16), 1080, 720),
            likes,
            liked_by_me: liked,
            recent_likers: vec![],
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn loaded(posts: Vec<Post>, cursor: Option<&str>) -> AppState {
        let s = AppState::default().reduce(Action::SortSelected(FeedSort::New));
        let generation = s.generation;
        s.reduce(Action::PageRequested { generation })
            .reduce(Action::PageLoaded {
                generation,
                page: FeedPage {
                    posts,
                    next_cursor: cursor.map(str::to_owned),
                },
            })
    }

    fn shown(s: &AppState, n: u64) -> (bool, u64) {
        let item = s
            .items
            .iter()
            .find(|i| i.post.id == id(n))
            .expect("post in feed");
        (item.shown_liked(), item.shown_likes())
    }

    #[test]
    fn a_like_shows_at_once_and_ends_at_the_servers_answer() {
        let s = loaded(vec![post(1, 41, Some(false))], None);
        let s = s.reduce(Action::LikeSent {
            post: id(1),
            liked: true,
            seq: 7,
        });
        assert_eq!(shown(&s, 1), (true, 42));
        // Someone else liked meanwhile: the server's answer is the truth.
        let s = s.reduce(Action::LikeConfirmed {
            seq: 7,
            response: LikeResponse {
                post_id: id(1),
                likes: 43,
                liked: true,
            },
        });
        assert_eq!(shown(&s, 1), (true, 43));
        assert!(s.items[0].pending.is_none());
    }

    #[test]
    fn a_failed_like_rolls_back_and_toasts() {
        let s = loaded(vec![post(1, 5, Some(false))], None)
            .reduce(Action::LikeSent {
                post: id(1),
                liked: true,
                seq: 1,
            })
            .reduce(Action::LikeFailed {
                post: id(1),
                seq: 1,
                message: "Couldn't like: offline".into(),
            });
        assert_eq!(shown(&s, 1), (false, 5));
        assert_eq!(s.toasts.len(), 1);
        assert_eq!(s.toasts[0].text, "Couldn't like: offline");
        let toast = s.toasts[0].id;
        let s = s.reduce(Action::ToastDismissed(toast));
        assert!(s.toasts.is_empty());
    }

    #[test]
    fn only_the_newest_request_clears_the_pending_state() {
        // like (seq 1), then unlike (seq 2) before the first answer arrives.
        let s = loaded(vec![post(1, 0, Some(false))], None)
            .reduce(Action::LikeSent {
                post: id(1),
                liked: true,
                seq: 1,
            })
            .reduce(Action::LikeSent {
                post: id(1),
                liked: false,
                seq: 2,
            });
        assert_eq!(shown(&s, 1), (false, 0));
        let s = s.reduce(Action::LikeConfirmed {
            seq: 1,
            response: LikeResponse {
                post_id: id(1),
                likes: 1,
                liked: true,
            },
        });
        // The unlike is still in flight: keep showing it.
        assert_eq!(shown(&s, 1), (false, 0));
        // The older request failing must not undo the newer wish either.
        let s = s.reduce(Action::LikeFailed {
            post: id(1),
            seq: 1,
            message: "x".into(),
        });
        assert_eq!(shown(&s, 1), (false, 0));
        let s = s.reduce(Action::LikeConfirmed {
            seq: 2,
            response: LikeResponse {
                post_id: id(1),
                likes: 0,
                liked: false,
            },
        });
        assert_eq!(shown(&s, 1), (false, 0));
        assert!(s.items[0].pending.is_none());
    }

    #[test]
    fn live_counts_update_the_server_count_under_a_pending_like() {
        let s = loaded(vec![post(1, 3, Some(true)), post(2, 9, None)], None);
        let s = s.reduce(Action::Counts(HashMap::from([(id(1), 10), (id(3), 1)])));
        assert_eq!(shown(&s, 1), (true, 10));
        assert_eq!(shown(&s, 2), (false, 9));
        let s = s
            .reduce(Action::LikeSent {
                post: id(1),
                liked: false,
                seq: 4,
            })
            .reduce(Action::Counts(HashMap::from([(id(1), 12)])));
        assert_eq!(shown(&s, 1), (false, 11));
    }

    #[test]
    fn pages_append_drop_repeats_and_stale_answers() {
        let s = loaded(vec![post(3, 0, None), post(2, 0, None)], Some("n2"));
        assert!(s.wants_more());
        let generation = s.generation;
        let s = s
            .reduce(Action::PageRequested { generation })
            .reduce(Action::PageLoaded {
                generation,
                page: FeedPage {
                    posts: vec![post(2, 0, None), post(1, 0, None)],
                    next_cursor: None,
                },
            });
        let ids: Vec<u64> = s.items.iter().map(|i| i.post.id.get()).collect();
        assert_eq!(ids, [3, 2, 1]);
        assert!(!s.wants_more(), "no cursor: the end");
        // A page for the old tab arriving after a switch is dropped.
        let s = s.reduce(Action::SortSelected(FeedSort::Top));
        assert!(s.items.is_empty() && s.wants_more());
        let s = s.reduce(Action::PageLoaded {
            generation,
            page: FeedPage {
                posts: vec![post(9, 0, None)],
                next_cursor: None,
            },
        });
        assert!(s.items.is_empty());
    }

    #[test]
    fn a_failed_page_stops_paging_until_retried() {
        let s = AppState::default();
        let generation = s.generation;
        let s = s
            .reduce(Action::PageRequested { generation })
            .reduce(Action::PageFailed {
                generation,
                message: "offline".into(),
            });
        assert!(!s.loading && !s.wants_more());
        assert_eq!(s.load_error.as_deref(), Some("offline"));
        let s = s.reduce(Action::Retry);
        assert!(s.wants_more() && s.load_error.is_none());
    }

    #[test]
    fn new_posts_wait_behind_the_pill_then_go_on_top() {
        let s = loaded(vec![post(2, 0, None)], None);
        let s = s
            .reduce(Action::PostCreated(post(3, 0, None)))
            .reduce(Action::PostCreated(post(4, 0, None)))
            .reduce(Action::PostCreated(post(4, 0, None)))
            .reduce(Action::PostCreated(post(2, 0, None)));
        assert_eq!(
            s.incoming.len(),
            2,
            "repeats and shown posts are not counted"
        );
        assert_eq!(s.items.len(), 1);
        let s = s.reduce(Action::IncomingShown);
        let ids: Vec<u64> = s.items.iter().map(|i| i.post.id.get()).collect();
        assert_eq!(ids, [4, 3, 2]);
        assert!(s.incoming.is_empty());
        // `top` is ordered by likes: new posts do not jump in.
        let s = s
            .reduce(Action::SortSelected(FeedSort::Top))
            .reduce(Action::PostCreated(post(5, 0, None)));
        assert!(s.incoming.is_empty());
    }

    #[test]
    fn posts_missed_while_offline_join_the_pill_in_order() {
        let s = loaded(vec![post(2, 0, None), post(1, 0, None)], None)
            .reduce(Action::PostCreated(post(4, 0, None)))
            .reduce(Action::CaughtUp(vec![
                post(5, 0, None),
                post(4, 0, None),
                post(3, 0, None),
                post(2, 0, None),
            ]));
        let ids: Vec<u64> = s.incoming.iter().map(|p| p.id.get()).collect();
        assert_eq!(ids, [5, 4, 3]);
    }

    #[test]
    fn an_own_upload_goes_on_top_once() {
        let s = loaded(vec![post(1, 0, None)], None)
            .reduce(Action::PostCreated(post(2, 0, None)))
            .reduce(Action::Uploaded(post(2, 0, None)));
        assert!(
            s.incoming.is_empty(),
            "the hub's copy is not announced again"
        );
        assert_eq!(s.items[0].post.id, id(2));
        let s = s.reduce(Action::Uploaded(post(2, 0, None)));
        assert_eq!(s.items.len(), 2);
    }

    #[test]
    fn signing_in_or_out_resets_the_feed() {
        let s = loaded(vec![post(1, 1, Some(true))], None);
        let generation = s.generation;
        let s = s.reduce(Action::SignedOut);
        assert!(s.items.is_empty() && s.session.is_none());
        assert_ne!(s.generation, generation);
        let s = s.reduce(Action::SignedIn(Session {
            token: "t".into(),
            user: User {
                id: UserId::new(2).expect("nonzero"),
                name: "bo".into(),
            },
        }));
        assert_eq!(s.session.as_ref().map(|s| s.user.name.as_str()), Some("bo"));
    }

    #[test]
    fn toasts_keep_the_latest_three() {
        let mut s = AppState::default();
        for n in 0..5 {
            s = s.reduce(Action::ToastShown(format!("t{n}")));
        }
        let texts: Vec<&str> = s.toasts.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["t2", "t3", "t4"]);
        let s = s.reduce(Action::ConnectionChanged(Connection::Live));
        assert_eq!(s.connection, Connection::Live);
    }
}
