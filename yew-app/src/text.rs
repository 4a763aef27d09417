//! The words the app shows, computed from data: "liked by alice and 41 others", "3 new posts",
//! "5m", and what each server error means to the person. Pure, so it is tested natively.

use likes_core::problem::Problem;

/// The "liked by …" line under a post, or `None` when nobody likes it.
///
/// `recent` are the post's recent likers as loaded, newest first; `me` is the person's name
/// when they like it now. When they liked it at load time but no longer do, their name is
/// dropped from `recent` once (`drop_me`), so an unlike never leaves "liked by you".
pub fn liked_by(
    recent: &[String],
    likes: u64,
    me: Option<&str>,
    drop_me: Option<&str>,
) -> Option<String> {
    if likes == 0 {
        return None;
    }
    let first = match me {
        Some(_) => Some("you".to_owned()),
        None => {
            let mut names = recent.iter();
            let mut skipped = false;
            names
                .find(|n| {
                    if !skipped && drop_me == Some(n.as_str()) {
                        skipped = true;
                        return false;
                    }
                    true
                })
                .cloned()
        }
    };
    let Some(first) = first else {
        return Some(count(likes, "like", "likes"));
    };
    Some(match likes - 1 {
        0 => format!("liked by {first}"),
        1 => format!("liked by {first} and 1 other"),
        others => format!("liked by {first} and {others} others"),
    })
}

/// `1 like`, `2 likes`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The pill above the feed: `1 new post`, `3 new posts`.
pub fn new_posts(n: usize) -> String {
    count(n as u64, "new post", "new posts")
}

/// A compact age like the apps people know: `now`, `5m`, `3h`, `2d`, `6w`.
pub fn age(seconds: i64) -> String {
    match seconds {
        s if s < 60 => "now".to_owned(),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3_600),
        s if s < 7 * 86_400 => format!("{}d", s / 86_400),
        s => format!("{}w", s / (7 * 86_400)),
    }
}

/// The box a `width`×`height` image gets in the feed, as `aspect-ratio` numbers: its own
/// ratio, clamped between 4:5 (portrait) and 1.91:1 (landscape) like the apps people know,
/// so one very tall photo cannot fill several screens. Known before the image loads, so
/// nothing jumps.
pub fn frame_ratio(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (width.max(1), height.max(1));
    if u64::from(w) * 5 < u64::from(h) * 4 {
        (4, 5)
    } else if u64::from(w) * 100 > u64::from(h) * 191 {
        (191, 100)
    } else {
        (w, h)
    }
}

/// What went wrong with an upload, in words a person can act on.
pub fn upload_error(status: u16, problem: Option<&Problem>, retry_after: Option<&str>) -> String {
    let detail = problem.map(|p| p.detail.as_str()).unwrap_or("");
    match status {
        413 => "That photo is too large (the limit is 10 MB). Try a smaller one.".to_owned(),
        415 => "That image format isn't supported. Use a JPEG, PNG, WebP or GIF.".to_owned(),
        422 if detail.is_empty() => "That file isn't an image we can use.".to_owned(),
        422 => format!("That file isn't an image we can use: {detail}."),
        429 => match retry_after.and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(secs) => format!("You're posting too fast. Try again in {secs} s."),
            None => "You're posting too fast. Try again in a moment.".to_owned(),
        },
        401 => "Your session has expired. Sign in again.".to_owned(),
        0 => "No connection. Check your network and try again.".to_owned(),
        _ => generic(status, problem),
    }
}

/// What went wrong with a like or unlike (shown in a toast; the heart has rolled back).
pub fn like_error(liked: bool, status: u16, problem: Option<&Problem>) -> String {
    let what = if liked { "like" } else { "unlike" };
    match status {
        0 => format!("Couldn't {what}: no connection."),
        401 => format!("Couldn't {what}: sign in again."),
        429 => format!("Couldn't {what}: too many taps, slow down."),
        _ => format!("Couldn't {what}: {}", generic(status, problem)),
    }
}

/// Any other error: the server's own title, or the status.
pub fn generic(status: u16, problem: Option<&Problem>) -> String {
    match (status, problem) {
        (0, _) => "No connection.".to_owned(),
        (503, _) => "The service is unavailable right now; try again shortly.".to_owned(),
        (_, Some(p)) if !p.detail.is_empty() => format!("{} ({})", p.title, p.detail),
        (_, Some(p)) => p.title.clone(),
        (s, None) => format!("The server answered {s}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn liked_by_reads_like_a_sentence() {
        let recent = names(&["alice", "bob"]);
        assert_eq!(liked_by(&recent, 0, None, None), None);
        assert_eq!(
            liked_by(&recent, 1, None, None).as_deref(),
            Some("liked by alice")
        );
        assert_eq!(
            liked_by(&recent, 2, None, None).as_deref(),
            Some("liked by alice and 1 other")
        );
        assert_eq!(
            liked_by(&recent, 42, None, None).as_deref(),
            Some("liked by alice and 41 others")
        );
        assert_eq!(
            liked_by(&recent, 42, Some("zoe"), None).as_deref(),
            Some("liked by you and 41 others")
        );
        assert_eq!(
            liked_by(&[], 7, None, None).as_deref(),
            Some("7 likes"),
            "a count that moved live before any name is known"
        );
        assert_eq!(liked_by(&[], 1, None, None).as_deref(), Some("1 like"));
    }

    #[test]
    fn an_unlike_drops_the_persons_own_name_once() {
        let recent = names(&["zoe", "alice"]);
        assert_eq!(
            liked_by(&recent, 1, None, Some("zoe")).as_deref(),
            Some("liked by alice")
        );
        // Another person with the same name still counts.
        let recent = names(&["zoe", "zoe"]);
        assert_eq!(
            liked_by(&recent, 1, None, Some("zoe")).as_deref(),
            Some("liked by zoe")
        );
    }

    #[test]
    fn ages_and_pills() {
        assert_eq!(age(5), "now");
        assert_eq!(age(61), "1m");
        assert_eq!(age(3 * 3_600 + 5), "3h");
        assert_eq!(age(2 * 86_400), "2d");
        assert_eq!(age(15 * 86_400), "2w");
        assert_eq!(new_posts(1), "1 new post");
        assert_eq!(new_posts(3), "3 new posts");
    }

    #[test]
    fn frames_keep_the_ratio_within_bounds() {
        assert_eq!(frame_ratio(600, 400), (600, 400));
        assert_eq!(frame_ratio(1080, 1350), (1080, 1350), "exactly 4:5 is kept");
        assert_eq!(frame_ratio(30, 73), (4, 5));
        assert_eq!(frame_ratio(4000, 1000), (191, 100));
        assert_eq!(frame_ratio(0, 0), (1, 1));
    }

    #[test]
    fn upload_errors_say_what_to_do() {
        assert!(upload_error(413, None, None).contains("too large"));
        assert!(upload_error(415, None, None).contains("JPEG, PNG, WebP or GIF"));
        let p = Problem::unprocessable("the image is over 50 megapixels");
        assert_eq!(
            upload_error(422, Some(&p), None),
            "That file isn't an image we can use: the image is over 50 megapixels."
        );
        assert_eq!(
            upload_error(429, None, Some("12")),
            "You're posting too fast. Try again in 12 s."
        );
        assert!(upload_error(429, None, Some("soon")).contains("in a moment"));
        assert!(upload_error(0, None, None).contains("No connection"));
        let p = Problem::internal();
        assert!(upload_error(500, Some(&p), None).starts_with("Internal Server Error"));
    }

    #[test]
    fn like_errors_name_the_action() {
        assert_eq!(like_error(true, 0, None), "Couldn't like: no connection.");
        assert_eq!(
            like_error(false, 503, None),
            "Couldn't unlike: The service is unavailable right now; try again shortly."
        );
        let p = Problem::not_found("no post p_9");
        assert_eq!(
            like_error(true, 404, Some(&p)),
            "Couldn't like: Not Found (no post p_9)"
        );
    }
}
