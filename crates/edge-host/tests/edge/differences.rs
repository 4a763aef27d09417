//! The one list of intended differences between our host and the real Spin 4.0.2 that a client
//! can see. The conformance tests assert each one as such: where the runtimes differ and no
//! entry covers it, a test fails; where an entry no longer holds, a test fails too.

/// One difference: where it shows (a step of the conformance sequence, or a case of the host
/// tests), which part of the answer differs (`status`, `body` or a header name), and why we
/// keep it.
#[derive(Debug)]
pub struct Difference {
    pub case: &'static str,
    pub part: &'static str,
    pub reason: &'static str,
}

/// Every intended difference.
pub const INTENDED: &[Difference] = &[
    Difference {
        case: "an oversized session body",
        part: "body",
        reason: "both answer 413 problem+json, but not the same layer: our host counts the body's \
                 bytes as they arrive and answers once they pass --max-body-bytes (10 MiB), \
                 before the guest runs, so its detail names that limit; Spin has no inbound body \
                 limit and hands all 11 MiB to the component, whose detail names its own (16 KiB \
                 for JSON). Spin platforms cap bodies themselves (Fermyon Cloud and Akamai \
                 Functions at 10 MB).",
    },
    Difference {
        case: "an 11 MiB upload without a token",
        part: "status",
        reason: "our host reads the body up to its limit before the guest runs, so a body over \
                 10 MiB is a 413 whoever sends it; under Spin the posts component sees the \
                 request first and refuses the missing token (401) before it reads the body. \
                 Either way nothing is stored; streaming the body into the guest would let our \
                 host answer as Spin does. Not in the fixed sequence: a client still sending may \
                 see Spin's 401 or the connection closed under it, as timing has it \
                 (`posts::an_11_mib_body_is_413_with_or_without_content_length`).",
    },
    Difference {
        case: "an error below the components",
        part: "body",
        reason: "a guest that traps, never answers, or a path no route matches, and a request \
                 the HTTP layer refuses before any component runs (431 too many or too large \
                 headers, 414 a too long path, 400 a bad Content-Length): our host answers \
                 application/problem+json like every other error of the contract; Spin answers \
                 the same status with an empty body and no content type.",
    },
];

/// The entry for `case` and `part`; panics when it is not listed, so a test cannot rely on a
/// difference nobody wrote down.
pub fn intended(case: &str, part: &str) -> &'static Difference {
    INTENDED
        .iter()
        .find(|d| d.case == case && d.part == part)
        .unwrap_or_else(|| panic!("no intended difference is listed for {case:?} / {part}"))
}
