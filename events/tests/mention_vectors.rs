//! The mention rules as shared test vectors (`tests/vectors/mentions.json`): the web client
//! reads bodies by the same rules (`web/src/state/mentions.ts`) and checks the same file, so
//! the two cannot drift apart, down to which characters Unicode calls letters or digits.
#![allow(clippy::unwrap_used)]

use events::mention::parse;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    body: String,
    usernames: Vec<String>,
    room: bool,
}

#[test]
fn every_vector_reads_as_written() {
    let vectors: Vectors = serde_json::from_str(include_str!("vectors/mentions.json")).unwrap();
    assert!(vectors.cases.len() >= 20);
    for case in &vectors.cases {
        let found = parse(&case.body);
        let names: Vec<&str> = found.usernames.iter().map(|u| u.as_str()).collect();
        assert_eq!(names, case.usernames, "usernames of {:?}", case.body);
        assert_eq!(found.room, case.room, "@room in {:?}", case.body);
    }
}
