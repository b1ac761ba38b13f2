//! The store contract: one test function per promise of [`Store`], run against every
//! back-end by [`store_contract_tests!`] in the back-end's own tests. A new back-end passes
//! when `store_contract_tests!(open)` (or `store_contract_tests!(open, durable)`) passes.
//!
//! `open(dir)` opens the back-end with whatever it keeps inside `dir` (a fresh directory per
//! test); opening it again on the same `dir` must find what a durable store kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{future::Future, path::PathBuf, pin::Pin, sync::Arc};

use msglog_common::testing::TempDir;
use msglog_proto::MessageText;
use uuid::Uuid;

use super::{Cursor, DedupBy, Inserted, NewMessage, Store, StoreError, Stored};

/// Generates one `#[tokio::test]` per contract promise for the back-end `open`s; `durable`
/// adds the promises about reopening. `backend f` instead of `open` names an
/// `async fn f() -> Option<Box<OpenFn>>` for a back-end that needs something running for the
/// length of the test (a server the closure holds): `None` skips the test, having said why.
macro_rules! store_contract_tests {
    ($($how:ident)+) => {
        store_contract_tests!(@module contract, [$($how)+],
            a_new_id_is_stored_and_the_same_message_again_is_a_duplicate,
            the_same_id_with_another_text_is_a_conflict_and_stores_nothing,
            list_keeps_insertion_order_and_equal_texts_under_other_ids,
            concurrent_inserts_of_one_id_store_it_once,
            many_concurrent_inserts_store_each_id_once,
            text_is_stored_byte_for_byte,
            a_working_store_passes_its_check,
            after_close_every_call_fails_cleanly,
            pages_walk_both_ways_in_seq_order_with_no_gap_or_double,
            subscribers_see_the_newest_seq_once_it_can_be_read,
            subscribers_get_each_committed_message_once_in_seq_order,
            a_subscriber_that_never_reads_holds_up_no_writer,
            by_text_a_text_held_under_any_id_is_a_duplicate,
            by_text_one_text_sent_under_64_ids_at_once_is_stored_once,
            by_id_equal_texts_under_other_ids_are_separate_messages,
            each_message_keeps_the_time_it_was_stored_and_a_duplicate_keeps_the_first
        );
    };
    ($($how:ident)+, durable) => {
        store_contract_tests!($($how)+);
        store_contract_tests!(@module durable_contract, [$($how)+],
            messages_and_ids_survive_a_reopen,
            seqs_survive_a_reopen_and_go_on_growing,
            a_reopened_store_starts_its_subscribers_at_its_newest_seq,
            by_text_texts_held_before_a_reopen_are_duplicates_after_it,
            times_survive_a_reopen
        );
    };
    (@module $module:ident, $how:tt, $($promise:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $promise() {
                    store_contract_tests!(@run $how, $promise);
                }
            )+
        }
    };
    (@run [$open:ident], $promise:ident) => {
        $crate::store::contract::$promise(&|dir, dedup_by| Box::pin(super::$open(dir, dedup_by)))
            .await
    };
    (@run [backend $backend:ident], $promise:ident) => {
        if let Some(open) = super::$backend().await {
            $crate::store::contract::$promise(&*open).await;
        }
    };
}

fn message(id: u128, text: &str) -> NewMessage {
    NewMessage {
        id: Uuid::from_u128(id),
        text: MessageText::parse(text.to_owned(), 1 << 20).unwrap(),
    }
}

/// Opens a back-end in a directory, with a duplicate rule.
pub(crate) type OpenFn =
    dyn Fn(PathBuf, DedupBy) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>> + Sync;
/// How a promise opens the back-end under test.
pub(crate) type Opener<'a> = &'a OpenFn;

/// A fresh directory and the store opened in it, keyed on ids alone (the rule every promise
/// but the text rule's is written for).
async fn fresh(open: Opener<'_>) -> (TempDir, Arc<dyn Store>) {
    fresh_with(open, DedupBy::Id).await
}

/// A fresh directory and the store opened in it with `dedup_by`.
async fn fresh_with(open: Opener<'_>, dedup_by: DedupBy) -> (TempDir, Arc<dyn Store>) {
    let dir = TempDir::new("msglog-store");
    let store = open(dir.path().to_path_buf(), dedup_by).await;
    (dir, store)
}

pub(crate) async fn a_new_id_is_stored_and_the_same_message_again_is_a_duplicate(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    assert_eq!(
        store.insert(message(1, "a")).await.unwrap(),
        Inserted::Stored
    );
    assert_eq!(
        store.insert(message(1, "a")).await.unwrap(),
        Inserted::Duplicate
    );
    assert_eq!(store.list().await.unwrap(), vec!["a"]);
}

pub(crate) async fn the_same_id_with_another_text_is_a_conflict_and_stores_nothing(
    open: Opener<'_>,
) {
    let (_dir, store) = fresh(open).await;
    store.insert(message(1, "a")).await.unwrap();
    let error = store.insert(message(1, "b")).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { id } if id == Uuid::from_u128(1)));
    assert_eq!(store.list().await.unwrap(), vec!["a"]);
}

pub(crate) async fn list_keeps_insertion_order_and_equal_texts_under_other_ids(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    for (id, text) in [(3, "c"), (1, "a"), (2, "b"), (4, "a")] {
        assert_eq!(
            store.insert(message(id, text)).await.unwrap(),
            Inserted::Stored
        );
    }
    assert_eq!(store.list().await.unwrap(), vec!["c", "a", "b", "a"]);
}

pub(crate) async fn concurrent_inserts_of_one_id_store_it_once(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(message(7, "same")).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        if task.await.unwrap() == Inserted::Stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(store.list().await.unwrap(), vec!["same"]);
}

pub(crate) async fn many_concurrent_inserts_store_each_id_once(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    // 400 inserts of 200 ids (each id twice), all at once.
    let tasks: Vec<_> = (0..400_u128)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .insert(message(n % 200, &format!("m{}", n % 200)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        if task.await.unwrap() == Inserted::Stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 200);
    let mut listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 200);
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), 200, "no text is listed twice");
}

pub(crate) async fn text_is_stored_byte_for_byte(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    let text = "nul\u{0} bell\u{7} 😀 𝄞 \r\n\t end";
    store.insert(message(1, text)).await.unwrap();
    assert_eq!(store.list().await.unwrap(), vec![text]);
}

pub(crate) async fn a_working_store_passes_its_check(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    store.check().await.unwrap();
    store.insert(message(1, "a")).await.unwrap();
    store.check().await.unwrap();
    assert_eq!(
        store.list().await.unwrap(),
        vec!["a"],
        "a check stores nothing"
    );
}

pub(crate) async fn after_close_every_call_fails_cleanly(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    store.insert(message(1, "before")).await.unwrap();
    store.close().await;
    store.close().await;
    assert!(matches!(
        store.insert(message(2, "late")).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.check().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.list().await,
        Err(StoreError::Unavailable(_))
    ));
}

/// Each message's time, read back through a page, in seq order.
async fn times(store: &dyn Store) -> Vec<Option<u64>> {
    let page = store.page(Cursor::After(0), 1000).await.unwrap();
    page.into_iter().map(|stored| stored.stored_at_ms).collect()
}

pub(crate) async fn each_message_keeps_the_time_it_was_stored_and_a_duplicate_keeps_the_first(
    open: Opener<'_>,
) {
    let (_dir, store) = fresh_with(open, DedupBy::Text).await;
    let mut subscription = store.subscribe();
    let before = super::now_ms();
    store.insert(message(1, "a")).await.unwrap();
    let after = super::now_ms();
    let first = times(&*store).await;
    let Some(at) = first[0] else {
        panic!("no time kept: {first:?}")
    };
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    // As subscribers are told it, too.
    assert_eq!(
        subscription.committed.recv().await.unwrap().stored_at_ms,
        Some(at)
    );

    // Later: the same id again, and the same text under another id. Both duplicates; the
    // first time stays.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        store.insert(message(1, "a")).await.unwrap(),
        Inserted::Duplicate
    );
    assert_eq!(
        store.insert(message(2, "a")).await.unwrap(),
        Inserted::DuplicateOf(Uuid::from_u128(1))
    );
    assert_eq!(times(&*store).await, first);
    // A new message gets its own, later time.
    store.insert(message(3, "b")).await.unwrap();
    let both = times(&*store).await;
    assert_eq!(both[0], Some(at));
    assert!(both[1].is_some_and(|later| later >= at + 5), "{both:?}");
}

pub(crate) async fn times_survive_a_reopen(open: Opener<'_>) {
    let (dir, store) = fresh(open).await;
    for n in 0..3 {
        store.insert(message(n, &format!("m{n}"))).await.unwrap();
    }
    let kept = times(&*store).await;
    assert!(kept.iter().all(Option::is_some), "{kept:?}");
    store.close().await;
    drop(store);
    let store = open(dir.path().to_path_buf(), DedupBy::Id).await;
    assert_eq!(times(&*store).await, kept);
    store.close().await;
}

pub(crate) async fn messages_and_ids_survive_a_reopen(open: Opener<'_>) {
    let (dir, store) = fresh(open).await;
    for n in 0..50 {
        store.insert(message(n, &format!("m{n}"))).await.unwrap();
    }
    store.close().await;
    drop(store);
    let store = open(dir.path().to_path_buf(), DedupBy::Id).await;
    let expected: Vec<_> = (0..50).map(|n| format!("m{n}")).collect();
    assert_eq!(store.list().await.unwrap(), expected);
    assert_eq!(
        store.insert(message(7, "m7")).await.unwrap(),
        Inserted::Duplicate
    );
    assert!(matches!(
        store.insert(message(7, "other")).await,
        Err(StoreError::Conflict { .. })
    ));
    store.close().await;
}

/// Every page of `limit` from one end to the other, following the cursors.
async fn walk(store: &dyn Store, forward: bool, limit: usize) -> Vec<Stored> {
    let mut seen = Vec::new();
    let mut cursor = if forward {
        Cursor::After(0)
    } else {
        Cursor::Before(u64::MAX)
    };
    loop {
        let page = store.page(cursor, limit).await.unwrap();
        assert!(page.len() <= limit);
        assert!(
            page.windows(2).all(|pair| pair[0].seq < pair[1].seq),
            "ascending"
        );
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            break;
        };
        cursor = if forward {
            Cursor::After(last.seq)
        } else {
            Cursor::Before(first.seq)
        };
        if forward {
            seen.extend(page);
        } else {
            seen.splice(0..0, page);
        }
    }
    seen
}

pub(crate) async fn pages_walk_both_ways_in_seq_order_with_no_gap_or_double(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    assert!(store.page(Cursor::After(0), 10).await.unwrap().is_empty());
    assert!(
        store
            .page(Cursor::Before(u64::MAX), 10)
            .await
            .unwrap()
            .is_empty()
    );
    for n in 0..250 {
        store
            .insert(message(1000 + n, &format!("m{n}")))
            .await
            .unwrap();
    }
    // A duplicate takes no seq.
    store.insert(message(1000, "m0")).await.unwrap();
    let expected: Vec<_> = (0..250).map(|n| format!("m{n}")).collect();
    for forward in [true, false] {
        let walked = walk(store.as_ref(), forward, 100).await;
        let texts: Vec<_> = walked.iter().map(|m| m.text.clone()).collect();
        assert_eq!(texts, expected, "forward: {forward}");
        assert!(walked.iter().all(|m| m.seq >= 1));
        assert!(walked.windows(2).all(|pair| pair[0].seq < pair[1].seq));
        let ids: Vec<_> = walked.iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            (0..250)
                .map(|n| Uuid::from_u128(1000 + n))
                .collect::<Vec<_>>()
        );
    }
    // Cursors past either end give empty pages; a page from the middle starts right after it.
    let all = walk(store.as_ref(), true, 1000).await;
    let middle = all[124].seq;
    let after = store.page(Cursor::After(middle), 3).await.unwrap();
    assert_eq!(after, all[125..128].to_vec());
    let before = store.page(Cursor::Before(middle), 3).await.unwrap();
    assert_eq!(before, all[121..124].to_vec());
    assert!(
        store
            .page(Cursor::After(all[249].seq), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .page(Cursor::Before(all[0].seq), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn seqs_survive_a_reopen_and_go_on_growing(open: Opener<'_>) {
    let (dir, store) = fresh(open).await;
    for n in 0..20 {
        store.insert(message(n, &format!("m{n}"))).await.unwrap();
    }
    let before = store.page(Cursor::After(0), 100).await.unwrap();
    store.close().await;
    drop(store);
    let store = open(dir.path().to_path_buf(), DedupBy::Id).await;
    assert_eq!(store.page(Cursor::After(0), 100).await.unwrap(), before);
    store.insert(message(99, "later")).await.unwrap();
    let newest = store.page(Cursor::Before(u64::MAX), 1).await.unwrap();
    assert_eq!(newest[0].text, "later");
    assert!(newest[0].seq > before[19].seq);
    store.close().await;
}

pub(crate) async fn subscribers_see_the_newest_seq_once_it_can_be_read(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    let mut subscription = store.subscribe();
    assert_eq!(
        *subscription.newest.borrow_and_update(),
        0,
        "an empty store"
    );
    // A watcher waiting before the write is woken by it and finds the message readable.
    let watcher = {
        let store = Arc::clone(&store);
        let mut newest = store.subscribe().newest;
        tokio::spawn(async move {
            newest.changed().await.unwrap();
            let seq = *newest.borrow_and_update();
            (seq, store.page(Cursor::After(0), 10).await.unwrap())
        })
    };
    store.insert(message(1, "a")).await.unwrap();
    let (seen, page) = watcher.await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(seen, page[0].seq);
    let newest = &mut subscription.newest;
    assert!(newest.has_changed().unwrap());
    assert_eq!(*newest.borrow_and_update(), page[0].seq);
    // A duplicate, a conflict and a check store nothing, and move nothing.
    store.insert(message(1, "a")).await.unwrap();
    store.insert(message(1, "b")).await.unwrap_err();
    store.check().await.unwrap();
    assert!(!newest.has_changed().unwrap());
    store.insert(message(2, "b")).await.unwrap();
    let last = store.page(Cursor::Before(u64::MAX), 1).await.unwrap();
    assert_eq!(*newest.borrow_and_update(), last[0].seq);
}

pub(crate) async fn subscribers_get_each_committed_message_once_in_seq_order(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    store.insert(message(1_000, "before")).await.unwrap();
    let mut subscription = store.subscribe();
    let inserts: Vec<_> = (0..200)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(message(n, &format!("m{n}"))).await })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap().unwrap();
    }
    store.insert(message(7, "m7")).await.unwrap(); // a duplicate: not published again
    let mut published = Vec::new();
    while let Ok(message) = subscription.committed.try_recv() {
        published.push(Stored::clone(&message));
    }
    // Exactly what the store holds after the subscription began, as it holds it.
    let stored = store.page(Cursor::After(0), 1000).await.unwrap();
    assert_eq!(stored[0].text, "before");
    assert_eq!(published, stored[1..]);
    // Published before the newest seq moved past it.
    assert_eq!(*subscription.newest.borrow(), published[199].seq);
}

pub(crate) async fn a_subscriber_that_never_reads_holds_up_no_writer(open: Opener<'_>) {
    let (_dir, store) = fresh(open).await;
    // More inserts than a subscription holds: those that never read lag, and writers go on.
    let mut stalled: Vec<_> = (0..100).map(|_| store.subscribe()).collect();
    let count = super::PUBLISHED as u128 + 500;
    let inserts: Vec<_> = (0..count)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(message(n, &format!("m{n}"))).await })
        })
        .collect();
    for insert in inserts {
        assert_eq!(insert.await.unwrap().unwrap(), Inserted::Stored);
    }
    let last = store.page(Cursor::Before(u64::MAX), 1).await.unwrap();
    assert_eq!(*store.subscribe().newest.borrow(), last[0].seq);
    // A stalled one is told it lagged, then holds only the newest messages.
    let subscription = &mut stalled[0];
    assert!(matches!(
        subscription.committed.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
    ));
    let mut held = 0;
    while subscription.committed.try_recv().is_ok() {
        held += 1;
    }
    assert_eq!(held, super::PUBLISHED);
}

pub(crate) async fn a_reopened_store_starts_its_subscribers_at_its_newest_seq(open: Opener<'_>) {
    let (dir, store) = fresh(open).await;
    for n in 0..5 {
        store.insert(message(n, &format!("m{n}"))).await.unwrap();
    }
    let newest = *store.subscribe().newest.borrow();
    store.close().await;
    drop(store);
    let store = open(dir.path().to_path_buf(), DedupBy::Id).await;
    assert_eq!(*store.subscribe().newest.borrow(), newest);
    assert_ne!(newest, 0);
    store.close().await;
}

pub(crate) async fn by_text_a_text_held_under_any_id_is_a_duplicate(open: Opener<'_>) {
    let (_dir, store) = fresh_with(open, DedupBy::Text).await;
    assert_eq!(
        store.insert(message(1, "a")).await.unwrap(),
        Inserted::Stored
    );
    assert_eq!(
        store.insert(message(2, "a")).await.unwrap(),
        Inserted::DuplicateOf(Uuid::from_u128(1)),
        "the same text under another id: the id it is held under"
    );
    assert_eq!(
        store.insert(message(1, "a")).await.unwrap(),
        Inserted::Duplicate,
        "the same id with its text"
    );
    assert!(
        matches!(
            store.insert(message(1, "b")).await,
            Err(StoreError::Conflict { .. })
        ),
        "the same id with another text stays a conflict"
    );
    // An id that holds one text, sent with a text held under another id: the id's rule wins.
    assert_eq!(
        store.insert(message(3, "c")).await.unwrap(),
        Inserted::Stored
    );
    assert!(matches!(
        store.insert(message(3, "a")).await,
        Err(StoreError::Conflict { .. })
    ));
    // Texts that differ by a byte are different texts.
    assert_eq!(
        store.insert(message(4, "a ")).await.unwrap(),
        Inserted::Stored
    );
    assert_eq!(store.list().await.unwrap(), vec!["a", "c", "a "]);
    let ids: Vec<_> = store
        .page(Cursor::After(0), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        ids,
        [Uuid::from_u128(1), Uuid::from_u128(3), Uuid::from_u128(4)]
    );
}

/// Inserts "the same text" under 64 ids, all at once; what each insert did.
async fn one_text_under_64_ids_at_once(store: &Arc<dyn Store>) -> Vec<Inserted> {
    let inserts: Vec<_> = (0..64)
        .map(|n| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.insert(message(100 + n, "the same text")).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for insert in inserts {
        outcomes.push(insert.await.unwrap().unwrap());
    }
    outcomes
}

pub(crate) async fn by_text_one_text_sent_under_64_ids_at_once_is_stored_once(open: Opener<'_>) {
    let (_dir, store) = fresh_with(open, DedupBy::Text).await;
    let outcomes = one_text_under_64_ids_at_once(&store).await;
    let stored = outcomes.iter().filter(|&&o| o == Inserted::Stored).count();
    assert_eq!(stored, 1);
    assert_eq!(store.list().await.unwrap(), vec!["the same text"]);
}

pub(crate) async fn by_id_equal_texts_under_other_ids_are_separate_messages(open: Opener<'_>) {
    let (_dir, store) = fresh_with(open, DedupBy::Id).await;
    let outcomes = one_text_under_64_ids_at_once(&store).await;
    assert!(outcomes.iter().all(|&o| o == Inserted::Stored));
    assert_eq!(store.list().await.unwrap().len(), 64);
}

pub(crate) async fn by_text_texts_held_before_a_reopen_are_duplicates_after_it(open: Opener<'_>) {
    let (dir, store) = fresh_with(open, DedupBy::Id).await;
    store.insert(message(1, "kept")).await.unwrap();
    store.insert(message(2, "kept")).await.unwrap();
    store.close().await;
    drop(store);
    // Reopened under the text rule (the index covers what was stored under the id rule too).
    let store = open(dir.path().to_path_buf(), DedupBy::Text).await;
    assert_eq!(
        store.insert(message(3, "kept")).await.unwrap(),
        Inserted::DuplicateOf(Uuid::from_u128(1)),
        "held under two ids: the first"
    );
    assert_eq!(
        store.insert(message(4, "new")).await.unwrap(),
        Inserted::Stored
    );
    assert_eq!(store.list().await.unwrap(), vec!["kept", "kept", "new"]);
    store.close().await;
}
