//! Every bad input gets a 4xx with a JSON `{"error": ...}` that says what was wrong, and
//! stores nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, parse_http_answer, status_and_json};

async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = app.http.post(app.url("/send_message")).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    status_and_json(request.send().await.unwrap()).await
}

async fn assert_nothing_stored(app: &TestApp) {
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn missing_empty_blank_or_null_message_is_400_no_message_provided() {
    let app = TestApp::spawn().await;
    for body in [
        r#"{}"#,
        r#"{"message": ""}"#,
        r#"{"message": "   "}"#,
        r#"{"message": "\n\t"}"#,
        r#"{"message": "\u200b\u2060\ufeff"}"#,
        r#"{"message": null}"#,
        r#"{"other": "x"}"#,
    ] {
        let (status, error) = post_raw(&app, Some("application/json"), body).await;
        assert_eq!(
            (status, error),
            (400, json!({"error": "No message provided"})),
            "{body}"
        );
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn each_malformed_body_is_400_with_a_reason() {
    let app = TestApp::spawn().await;
    let deep = format!(
        r#"{{"message": "a", "x": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            br#"{"message": 42}"#.to_vec(),
            "message must be a JSON string, not a number",
        ),
        (
            br#"{"message": {"text": "x"}}"#.to_vec(),
            "message must be a JSON string, not an object",
        ),
        (
            br#"{"message": true}"#.to_vec(),
            "message must be a JSON string, not a boolean",
        ),
        (br#"{"message": "unterminated"#.to_vec(), "malformed JSON"),
        (
            br#"{"message": "one", "message": "two"}"#.to_vec(),
            r#"malformed JSON: the key "message" appears twice"#,
        ),
        (b"not json at all".to_vec(), "malformed JSON"),
        (br#"["message", "x"]"#.to_vec(), "must be a JSON object"),
        (br#""just a string""#.to_vec(), "must be a JSON object"),
        (b"".to_vec(), "request body is empty"),
        (
            b"{\"message\": \"caf\xe9\"}".to_vec(),
            "request body is not valid UTF-8",
        ),
        (deep.into_bytes(), "recursion limit exceeded"),
    ];
    for (body, expected) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let (status, error) = post_raw(&app, Some("application/json"), body).await;
        assert_eq!(status, 400, "{shown}");
        let text = error["error"].as_str().unwrap();
        assert!(text.contains(expected), "{shown}: {text}");
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_by_content_type_is_415() {
    let app = TestApp::spawn().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, error) = post_raw(&app, content_type, r#"{"message": "hi"}"#).await;
        assert_eq!(
            (status, error),
            (
                415,
                json!({"error": "Content-Type must be application/json"})
            ),
            "{content_type:?}"
        );
    }
    // With a charset it is still JSON.
    let (status, _) = post_raw(
        &app,
        Some("application/json; charset=utf-8"),
        r#"{"message": "hi"}"#,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_message_over_its_limit_is_400_and_a_body_over_its_limit_is_413() {
    let app = TestApp::spawn_with(|settings| {
        settings.max_message_bytes = 1000;
        settings.max_body_bytes = 4096;
    })
    .await;
    let exactly = "é".repeat(500); // 1000 bytes
    let (status, _) = app.client().post_message(&exactly).await;
    assert_eq!(status, 200);

    let (status, error) = app.client().post_message(&format!("{exactly}x")).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"],
        "message is 1001 bytes long; the limit is 1000 bytes"
    );

    let big = serde_json::to_vec(&json!({"message": "y".repeat(5000)})).unwrap();
    let (status, error) = post_raw(&app, Some("application/json"), big.clone()).await;
    assert_eq!(status, 413);
    assert_eq!(
        error["error"],
        "request body is larger than the limit of 4096 bytes"
    );

    // The same without a Content-Length (chunked): refused once the limit is crossed.
    let (status, body) = post_chunked(&app, &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("larger than the limit of 4096 bytes"),
        "{body}"
    );

    assert_eq!(app.stored().await, vec![exactly]);
}

/// Posts `body` with `Transfer-Encoding: chunked` (no declared length) over a raw connection,
/// and returns the status and body of the answer.
async fn post_chunked(app: &TestApp, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(app.facade.addr)
        .await
        .unwrap();
    let mut request = format!(
        "POST /send_message HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        app.facade.addr
    )
    .into_bytes();
    for chunk in body.chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading it all; that is the point.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    parse_http_answer(&answer)
}

#[tokio::test]
async fn idempotency_keys_are_checked_and_a_resent_post_is_answered_not_stored() {
    let app =
        TestApp::spawn_with(|settings| settings.dedup = facade_service::DedupMode::Unique).await;
    let post = |key: &'static str, text: &'static str| {
        let request = app
            .http
            .post(app.url("/send_message"))
            .header("idempotency-key", key)
            .json(&json!({ "message": text }));
        async move { status_and_json(request.send().await.unwrap()).await }
    };

    let (status, first) = post("order-42", "pay").await;
    assert_eq!((status, first["status"].as_str()), (200, Some("success")));
    let (status, resent) = post("order-42", "pay").await;
    assert_eq!(
        (status, resent["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(resent["id"], first["id"]);

    let (status, error) = post("order-42", "pay twice").await;
    assert_eq!(status, 422);
    assert_eq!(
        error["error"],
        r#"Idempotency-Key "order-42" was already used for a different message"#
    );

    for bad in ["has space", "x".repeat(256).leak() as &str] {
        let (status, error) = post(bad, "pay").await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .starts_with("Idempotency-Key must be")
        );
    }

    assert_eq!(app.stored().await, vec!["pay"]);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let (status, error) =
        status_and_json(app.http.get(app.url("/nope")).send().await.unwrap()).await;
    assert_eq!(
        (status, error),
        (404, json!({"error": "no route for /nope"}))
    );
    let (status, error) =
        status_and_json(app.http.get(app.url("/send_message")).send().await.unwrap()).await;
    assert_eq!(
        (status, error),
        (405, json!({"error": "method not allowed"}))
    );
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_a_json_503_at_the_request_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use crate::helpers::{facade_settings, refused_addr, spawn_facade};

    let nowhere = format!("http://{}", refused_addr().await);
    let mut settings = facade_settings(&nowhere, &nowhere);
    settings.request_timeout_ms = 300;
    let facade = spawn_facade(settings).await;
    let mut stream = tokio::net::TcpStream::connect(facade.addr).await.unwrap();
    // 100 bytes announced, 14 sent, and the connection held open.
    stream
        .write_all(
            b"POST /send_message HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"message\": \"",
        )
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer before the client gives up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(
        answer.ends_with(r#"{"error":"the request took too long"}"#),
        "{answer}"
    );
}
