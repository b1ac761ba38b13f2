//! The original's README walk-through, step by step.

use serde_json::json;

use msglog_common::testing::LogAfterStart;

use crate::helpers::{
    Client, TestApp, facade_settings, logging_settings, refused_addr, spawn_facade, spawn_logging,
    spawn_logging_with, spawn_messages, start_facade_binary, status_and_json,
};

#[tokio::test]
async fn the_originals_walkthrough_post_get_duplicate_another_get_in_order() {
    let app = TestApp::spawn().await;
    let client = app.client();

    // First GET: nothing logged yet; the messages service answers its stub text.
    let (status, body) = client.get_messages().await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"logged_messages": [], "message_from_service": "not implemented yet"})
    );

    // POST msg2.
    let (status, first) = client.post_message("msg2").await;
    assert_eq!(status, 200);
    assert_eq!(first["status"], "success");
    assert_eq!(first["message"], "Message logged successfully");
    let id = first["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id);
    assert_eq!(
        first.as_object().unwrap().len(),
        3,
        "exactly the original's fields"
    );

    // The same text again: a duplicate with the same id, nothing stored.
    let (status, again) = client.post_message("msg2").await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        json!({"id": id, "status": "duplicate", "message": "Duplicate message ignored"})
    );

    // Another text.
    let (status, other) = client.post_message("different message").await;
    assert_eq!(status, 200);
    assert_eq!(other["status"], "success");
    assert_ne!(other["id"], first["id"]);

    // GET: both, in insertion order.
    let (status, body) = client.get_messages().await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "logged_messages": ["msg2", "different message"],
            "message_from_service": "not implemented yet"
        })
    );
}

#[tokio::test]
async fn unique_mode_stores_equal_texts_as_separate_messages() {
    let app =
        TestApp::spawn_with(|settings| settings.dedup = facade_service::DedupMode::Unique).await;
    let client = app.client();
    let (_, a) = client.post_message("same").await;
    let (_, b) = client.post_message("same").await;
    assert_eq!(
        (a["status"].as_str(), b["status"].as_str()),
        (Some("success"), Some("success"))
    );
    assert_ne!(a["id"], b["id"]);
    let (_, body) = client.get_messages().await;
    assert_eq!(body["logged_messages"], json!(["same", "same"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_facade_in_front_of_a_logging_that_dedups_by_text_says_so_in_its_log() {
    // Logging on its default rule (by text), the facade asking for unique messages.
    let logging = spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
    let facade = start_facade_binary(
        &logging.url(),
        &["--dedup", "unique"],
        LogAfterStart::Capture,
    )
    .await;
    let client = Client {
        base: format!("http://{}", facade.addr),
        http: reqwest::Client::new(),
    };
    let (_, first) = client.post_message("same").await;
    assert_eq!(first["status"], "success");
    assert!(
        facade
            .log_lines()
            .iter()
            .all(|line| !line.contains("--dedup-by id")),
        "no warning while nothing clashes"
    );
    let (_, second) = client.post_message("same").await;
    assert_eq!(second["status"], "duplicate", "logging's rule decides");
    assert_eq!(second["id"], first["id"], "the id of the message held");
    let warning = facade
        .wait_for_log_line(|line| line.contains("WARN") && line.contains("--dedup-by id"))
        .await;
    assert!(warning.contains("--dedup unique"), "{warning}");
    assert!(
        warning.contains(second["id"].as_str().unwrap()),
        "{warning}"
    );
}

#[tokio::test]
async fn control_characters_and_non_bmp_text_are_stored_and_returned_intact() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let text = "tab\there\u{0}nul \u{7f} 😀 𝄞 «ünïcode» \r\n end ";
    let (status, _) = client.post_message(text).await;
    assert_eq!(status, 200);
    let (_, body) = client.get_messages().await;
    assert_eq!(body["logged_messages"], json!([text]));
}

#[tokio::test]
async fn messages_down_still_answers_200_with_an_error_text() {
    let logging = spawn_logging().await;
    let messages_url = format!("http://{}", refused_addr().await);
    let facade = spawn_facade(facade_settings(&logging.url(), &messages_url)).await;
    let client = Client::new(&facade);
    client.post_message("hello").await;

    let (status, body) = client.get_messages().await;
    assert_eq!(status, 200);
    assert_eq!(body["logged_messages"], json!(["hello"]));
    let text = body["message_from_service"].as_str().unwrap();
    assert!(
        text.starts_with("Messages service error: unreachable"),
        "{text}"
    );
}

#[tokio::test]
async fn logging_down_makes_get_messages_a_json_500() {
    let messages = spawn_messages().await;
    let logging_url = format!("http://{}", refused_addr().await);
    let facade = spawn_facade(facade_settings(&logging_url, &messages.url())).await;
    let (status, body) = Client::new(&facade).get_messages().await;
    assert_eq!(status, 500);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("Service error: logging service: UNAVAILABLE"),
        "{error}"
    );
    assert_eq!(body["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn a_duplicate_is_answered_with_the_id_of_the_message_held() {
    let app = TestApp::spawn().await;
    // Stored under the id of its key; then the same text with no key: a duplicate by the text
    // rule, of the message held under the key's id.
    let keyed = app
        .http
        .post(app.url("/send_message"))
        .header("idempotency-key", "first-send")
        .json(&json!({ "message": "said once" }))
        .send()
        .await
        .unwrap();
    let (status, first) = status_and_json(keyed).await;
    assert_eq!((status, first["status"].as_str()), (200, Some("success")));
    let (status, again) = app.client().post_message("said once").await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(again["id"], first["id"], "the stored message's id");
    // The gRPC door says the same.
    let mut client = msglog_proto::v1::message_log_client::MessageLogClient::new(
        crate::helpers::channel(&app.facade.url()).await,
    );
    let sent = client
        .send(msglog_proto::v1::SendRequest {
            text: "said once".to_owned(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.id, first["id"].as_str().unwrap());
    assert_eq!(app.stored().await, ["said once"]);
}
