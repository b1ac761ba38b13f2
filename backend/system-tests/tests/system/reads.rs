//! A read must not fail for being slow: a large list, asked for by many clients at once with
//! gzip (as browsers ask), is answered to every one of them.

use crate::helpers::{
    facade_settings, fill, logging_settings, spawn_facade, spawn_logging_with, spawn_messages,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gzip_lists_of_a_large_store_are_all_answered() {
    const MESSAGES: usize = 20_000;
    const CLIENTS: usize = 32;
    const EACH: usize = 3;
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--dedup-by", "id"],
    ))
    .await;
    let messages = spawn_messages().await;
    // About 1.3 MB of JSON per answer.
    fill(
        &logging.url(),
        "a message of a fairly ordinary length, number ",
        MESSAGES,
    )
    .await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let url = format!("{}/get_messages", facade.url());
    let http = reqwest::Client::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..EACH {
                    let response = http
                        .get(&url)
                        .header("accept-encoding", "gzip")
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let encoding = response
                        .headers()
                        .get("content-encoding")
                        .map(|value| value.to_str().unwrap().to_owned());
                    let body = response.bytes().await.unwrap();
                    answers.push((status, encoding, body.len()));
                }
                answers
            })
        })
        .collect();
    let mut failed = Vec::new();
    for client in clients {
        for (status, encoding, bytes) in client.await.unwrap() {
            if status != 200 || encoding.as_deref() != Some("gzip") {
                failed.push((status, encoding, bytes));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} lists failed: {:?}",
        failed.len(),
        CLIENTS * EACH,
        &failed[..failed.len().min(5)]
    );
}
