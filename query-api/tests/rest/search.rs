//! Search beside the read models: the index and the read models are two projections, each
//! at its own position. Neither may hide what the other already knows: a message the index
//! has and the read models have not seen yet is found; a message the read models know is
//! deleted is not, even before the index applies the delete.

use std::time::Duration;

use crate::helpers::{TestApp, unique};
use test_support::{DEADLINE, wait_until};

fn bodies(res: &crate::helpers::Res) -> Vec<String> {
    let body = res.assert_status(200);
    body["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {body}"))
        .iter()
        .map(|h| h["body"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_hit_the_read_models_have_not_seen_yet_is_found_and_a_known_delete_is_not() {
    let app = TestApp::spawn().await;
    let alice = app.register(&format!("alice_{}", unique())).await;
    let room = app.create_room(&alice, "ahead", "public").await;
    let (old, _, _) = app.say(&alice, room, "an older note").await;
    app.project().await;
    app.index().await;

    // Only the index has the newest message.
    // (`min_position` would wait for the read models; the query-api's reader follows the
    // index's commits by itself.)
    app.say(&alice, room, "a fresh note").await;
    app.index().await;
    let search = || app.get("/v1/search/messages?q=note&sort=recent", &alice.token);
    wait_until(
        DEADLINE,
        Duration::from_millis(20),
        "the search never found the message only the index has",
        || async { bodies(&search().await).len() == 2 },
    )
    .await;
    assert_eq!(
        bodies(&search().await),
        vec!["a fresh note", "an older note"]
    );

    // Only the read models have the delete.
    app.delete_message(&alice, room, old)
        .await
        .assert_status(200);
    app.project().await;
    assert_eq!(bodies(&search().await), vec!["a fresh note"]);
    app.cleanup().await;
}
