//! Sorting a batch's entries into events to store and entries to park: an undecodable entry or
//! one whose ids PostgreSQL cannot hold must not wedge the stream, so it is kept verbatim in
//! `stream_dead_letters` (see [`super::sql::park`]) instead. Pure.

use likes_core::events::StreamEvent;

use super::Entry;
use super::fold::fits;

/// A parked entry as it goes into `stream_dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The entry id.
    pub id: String,
    /// The entry's fields, readable.
    pub fields: String,
    /// Why it was parked.
    pub error: String,
}

/// A batch sorted into the events to fold, in stream order, and the entries to park.
#[derive(Debug, Default)]
pub struct Triage<'a> {
    pub good: Vec<&'a StreamEvent>,
    pub parked: Vec<Parked>,
}

/// Sorts `entries` (in stream order) into storable events and parked entries.
pub fn triage<'a>(entries: &[&'a Entry]) -> Triage<'a> {
    let mut out = Triage {
        good: Vec::with_capacity(entries.len()),
        parked: Vec::new(),
    };
    for e in entries {
        match &e.event {
            Ok(ev) if fits(ev) => out.good.push(ev),
            Ok(ev) => out.parked.push(Parked {
                id: e.pos.to_string(),
                fields: format!("{ev:?}"),
                error: "id exceeds BIGINT".into(),
            }),
            Err(bad) => out.parked.push(Parked {
                id: e.pos.to_string(),
                fields: bad.fields.clone(),
                error: bad.error.clone(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use likes_core::events::{EventError, NewPost};
    use likes_core::{PostId, UserId};

    use super::*;
    use crate::apply::BadEntry;
    use crate::checkpoint::StreamPos;

    fn entry(seq: u64, event: Result<StreamEvent, BadEntry>) -> Entry {
        Entry {
            pos: StreamPos { ms: 7, seq },
            event,
        }
    }

    #[test]
    fn undecodable_and_oversized_entries_are_parked_in_order() {
        let user = StreamEvent::User {
            user: UserId::new(1).expect("nonzero"),
            name: "ann".into(),
            ts: String::new(),
        };
        let wide = StreamEvent::Post(NewPost {
            post: PostId::new(2).expect("nonzero"),
            user: UserId::new(1).expect("nonzero"),
            name: "ann".into(),
            caption: String::new(),
            image: String::new(),
            width: u32::MAX,
            height: 1,
            ts: String::new(),
        });
        let fields = [
            ("kind".to_owned(), b"nope".to_vec()),
            ("v".to_owned(), b"1".to_vec()),
        ];
        let bad = BadEntry::new(&fields, &EventError::Kind("nope".into()));
        let entries = [
            entry(0, Ok(user.clone())),
            entry(1, Err(bad)),
            entry(2, Ok(wide)),
            entry(3, Ok(user.clone())),
        ];
        let refs: Vec<&Entry> = entries.iter().collect();
        let t = triage(&refs);
        assert_eq!(t.good, vec![&user, &user]);
        assert_eq!(t.parked.len(), 2);
        assert_eq!(
            (t.parked[0].id.as_str(), t.parked[0].fields.as_str()),
            ("7-1", "kind=nope v=1")
        );
        assert_eq!(t.parked[0].error, "stream entry has unknown kind `nope`");
        assert_eq!(
            (t.parked[1].id.as_str(), t.parked[1].error.as_str()),
            ("7-2", "id exceeds BIGINT")
        );
    }
}
