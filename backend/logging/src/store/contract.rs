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

use super::{Inserted, NewMessage, Store, StoreError};

/// Generates one `#[tokio::test]` per contract promise for the back-end `open`s; `durable`
/// adds the promises about reopening.
macro_rules! store_contract_tests {
    ($open:ident) => {
        store_contract_tests!(@module contract, $open,
            a_new_id_is_stored_and_the_same_message_again_is_a_duplicate,
            the_same_id_with_another_text_is_a_conflict_and_stores_nothing,
            list_keeps_insertion_order_and_equal_texts_under_other_ids,
            concurrent_inserts_of_one_id_store_it_once,
            many_concurrent_inserts_store_each_id_once,
            text_is_stored_byte_for_byte,
            a_working_store_passes_its_check,
            after_close_every_call_fails_cleanly
        );
    };
    ($open:ident, durable) => {
        store_contract_tests!($open);
        store_contract_tests!(@module durable_contract, $open, messages_and_ids_survive_a_reopen);
    };
    (@module $module:ident, $open:ident, $($promise:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $promise() {
                    $crate::store::contract::$promise(|dir| Box::pin(super::$open(dir))).await;
                }
            )+
        }
    };
}

fn message(id: u128, text: &str) -> NewMessage {
    NewMessage {
        id: Uuid::from_u128(id),
        text: MessageText::parse(text.to_owned(), 1 << 20).unwrap(),
    }
}

/// Opens a back-end in a directory.
pub(crate) type Opener = fn(PathBuf) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>>;

/// A fresh directory and the store opened in it.
async fn fresh(open: Opener) -> (TempDir, Arc<dyn Store>) {
    let dir = TempDir::new("msglog-store");
    let store = open(dir.path().to_path_buf()).await;
    (dir, store)
}

pub(crate) async fn a_new_id_is_stored_and_the_same_message_again_is_a_duplicate(open: Opener) {
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

pub(crate) async fn the_same_id_with_another_text_is_a_conflict_and_stores_nothing(open: Opener) {
    let (_dir, store) = fresh(open).await;
    store.insert(message(1, "a")).await.unwrap();
    let error = store.insert(message(1, "b")).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { id } if id == Uuid::from_u128(1)));
    assert_eq!(store.list().await.unwrap(), vec!["a"]);
}

pub(crate) async fn list_keeps_insertion_order_and_equal_texts_under_other_ids(open: Opener) {
    let (_dir, store) = fresh(open).await;
    for (id, text) in [(3, "c"), (1, "a"), (2, "b"), (4, "a")] {
        assert_eq!(
            store.insert(message(id, text)).await.unwrap(),
            Inserted::Stored
        );
    }
    assert_eq!(store.list().await.unwrap(), vec!["c", "a", "b", "a"]);
}

pub(crate) async fn concurrent_inserts_of_one_id_store_it_once(open: Opener) {
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

pub(crate) async fn many_concurrent_inserts_store_each_id_once(open: Opener) {
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

pub(crate) async fn text_is_stored_byte_for_byte(open: Opener) {
    let (_dir, store) = fresh(open).await;
    let text = "nul\u{0} bell\u{7} 😀 𝄞 \r\n\t end";
    store.insert(message(1, text)).await.unwrap();
    assert_eq!(store.list().await.unwrap(), vec![text]);
}

pub(crate) async fn a_working_store_passes_its_check(open: Opener) {
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

pub(crate) async fn after_close_every_call_fails_cleanly(open: Opener) {
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

pub(crate) async fn messages_and_ids_survive_a_reopen(open: Opener) {
    let (dir, store) = fresh(open).await;
    for n in 0..50 {
        store.insert(message(n, &format!("m{n}"))).await.unwrap();
    }
    store.close().await;
    drop(store);
    let store = open(dir.path().to_path_buf()).await;
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
