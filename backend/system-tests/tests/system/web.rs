//! The page's API under `/api/` and the static files.

use msglog_common::testing::TempDir;
use serde_json::json;

use crate::helpers::{
    Client, TestApp, facade_settings, refused_addr, spawn_facade, spawn_messages, status_and_json,
};

const INDEX: &str = r#"<!doctype html><html><head><link rel="stylesheet" href="/style-0123456789abcdef.css">
<script type="module">import init from '/app-0123456789abcdef.js'; await init();</script></head><body></body></html>"#;

/// A built-page directory with an index, a hashed asset and a plain file.
fn static_dir() -> TempDir {
    let dir = TempDir::new("msglog-web");
    std::fs::write(dir.join("index.html"), INDEX).unwrap();
    std::fs::write(
        dir.join("app-0123456789abcdef.js"),
        "export default 1;\n".repeat(200),
    )
    .unwrap();
    // A gzip copy beside the script, as the build writes one; none beside the style sheet.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, "export default 1;\n".repeat(200).as_bytes()).unwrap();
    std::fs::write(dir.join("app-0123456789abcdef.js.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.join("style-0123456789abcdef.css"),
        "body { margin: 0; }\n".repeat(200),
    )
    .unwrap();
    std::fs::write(dir.join("robots.txt"), "User-agent: *\n").unwrap();
    dir
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_page_is_served_with_no_cache_and_a_csp_that_admits_only_its_loader() {
    let dir = static_dir();
    let app = TestApp::spawn_with(|s| s.static_dir = dir.path().to_path_buf()).await;

    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert!(header(&page, "content-type").starts_with("text/html"));
    let csp = header(&page, "content-security-policy");
    // The page's one inline script, allowed by its hash and nothing else inline.
    let loader = "import init from '/app-0123456789abcdef.js'; await init();";
    let hash = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        <sha2::Sha256 as sha2::Digest>::digest(loader),
    );
    assert!(
        csp.contains(&format!(
            "script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}';"
        )),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert_eq!(page.text().await.unwrap(), INDEX);

    let asset = app
        .http
        .get(app.url("/app-0123456789abcdef.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(
        header(&asset, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(header(&asset, "content-type").contains("javascript"));

    let plain = app.http.get(app.url("/robots.txt")).send().await.unwrap();
    assert_eq!(header(&plain, "cache-control"), "no-cache");

    // Sent as the build stored it: its gzip copy to a client that asks, and a file with no
    // copy as it is (never compressed on each request).
    let gzipped = app
        .http
        .get(app.url("/app-0123456789abcdef.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&gzipped, "content-encoding"), "gzip");
    assert_eq!(header(&gzipped, "etag"), "\"0123456789abcdef-gzip\"");
    let as_is = app
        .http
        .get(app.url("/style-0123456789abcdef.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&as_is, "content-encoding"), "");
    assert_eq!(
        as_is.text().await.unwrap(),
        "body { margin: 0; }\n".repeat(200)
    );
    // The JSON answers are still compressed for clients that ask.
    let list = app
        .http
        .get(app.url("/api/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&list, "content-encoding"), "gzip");
}

#[tokio::test]
async fn unknown_paths_give_browsers_the_page_and_other_clients_json_404() {
    let dir = static_dir();
    let app = TestApp::spawn_with(|s| s.static_dir = dir.path().to_path_buf()).await;

    let navigation = app
        .http
        .get(app.url("/some/view"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(navigation.status(), 200);
    assert_eq!(navigation.text().await.unwrap(), INDEX);

    let (status, body) =
        status_and_json(app.http.get(app.url("/some/view")).send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (404, json!({"error": "no route for /some/view"}))
    );

    let api = app
        .http
        .get(app.url("/api/nope"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let (status, _) = status_and_json(api).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn without_a_built_page_the_root_says_how_to_build_it() {
    let app = TestApp::spawn_with(|s| s.static_dir = "/nonexistent/dist".into()).await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 503);
    let text = page.text().await.unwrap();
    assert!(text.contains("not built"), "{text}");
    assert!(text.contains("trunk build --release"), "{text}");
    assert!(text.contains("/nonexistent/dist"), "{text}");
}

#[tokio::test]
async fn the_api_sends_lists_and_says_how_many_attempts_it_took() {
    let app = TestApp::spawn().await;
    let send = |text: &'static str| {
        let request = app
            .http
            .post(app.url("/api/messages"))
            .json(&json!({ "message": text }));
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    let (status, first) = send("from the page").await;
    assert_eq!(status, 200);
    assert_eq!(first["status"], "success");
    assert_eq!(first["attempts"], 1);
    let (_, again) = send("from the page").await;
    assert_eq!(
        (again["status"].as_str(), &again["id"]),
        (Some("duplicate"), &first["id"])
    );

    let (status, error) = send("   ").await;
    assert_eq!(
        (status, error),
        (400, json!({"error": "No message provided"}))
    );

    let (status, list) =
        status_and_json(app.http.get(app.url("/api/messages")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    // When it was stored: a time of logging's, in milliseconds since the epoch.
    let stored_at = list["messages"][0]["stored_at_ms"].as_u64().unwrap();
    assert!(stored_at > 1_700_000_000_000, "{list}");
    assert_eq!(
        list,
        json!({
            "messages": [{"seq": 1, "id": first["id"], "text": "from the page", "stored_at_ms": stored_at}],
            "next_cursor": null
        })
    );

    // The original's route keeps the original's three fields.
    let (_, original) = app.client().post_message("plain").await;
    assert!(original.get("attempts").is_none(), "{original}");
}

#[tokio::test]
async fn status_reports_each_service_up_or_down() {
    let app = TestApp::spawn().await;
    let (status, body) = app.client().get_json("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["facade"]["up"], true);
    assert_eq!(body["logging"], json!({"up": true, "detail": "SERVING"}));
    assert_eq!(
        body["messages"],
        json!({"up": true, "detail": "not implemented yet"})
    );
    // The live feed: followed from the start, live once connected; no watcher yet.
    assert_eq!(body["feed"]["watchers"], 0, "{body}");
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let (_, body) = app.client().get_json("/api/status").await;
            if body["feed"]["live"] == true {
                break;
            }
            assert_eq!(body["feed"]["live"], false, "{body}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the feed was live within 10 s");

    let messages = spawn_messages().await;
    let logging_url = format!("http://{}", refused_addr().await);
    let facade = spawn_facade(facade_settings(&logging_url, &messages.url())).await;
    let client = Client::new(&facade);
    let (status, body) = client.get_json("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["logging"]["up"], false);
    assert_eq!(
        body["feed"]["live"], false,
        "no feed without logging: {body}"
    );
    assert!(
        body["logging"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("UNAVAILABLE"),
        "{body}"
    );
    assert_eq!(body["messages"]["up"], true);
    messages.stop().await;
    // The status is at most about a second old: the change shows within a few.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let (_, body) = client.get_json("/api/status").await;
            if body["messages"]["up"] == false {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the status told messages was down within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_requests_at_once_share_one_check_of_the_services() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    // A messages stand-in that counts the checks it is asked.
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let router = axum::Router::new().route(
        "/get_message",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "not implemented yet" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let messages_url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let logging = crate::helpers::spawn_logging().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages_url)).await;
    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let client = Client::new(&facade);
        answers.spawn(async move { client.get_json("/api/status").await });
    }
    while let Some(answer) = answers.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["messages"]["up"], true, "{body}");
    }
    let checks = asked.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&checks),
        "200 status requests made {checks} checks of messages"
    );
    server.abort();
}

#[tokio::test]
async fn the_openapi_document_is_served_with_the_limits_in_force() {
    let app = TestApp::spawn_with(|settings| {
        settings.max_message_bytes = 1000;
        settings.max_body_bytes = 5000;
    })
    .await;
    let response = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{response:?}"
    );
    let (status, document) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["schemas"]["SendMessageRequest"]["properties"]["message"]["maxLength"],
        1000
    );
    let body = document["paths"]["/api/messages"]["post"]["requestBody"]["description"]
        .as_str()
        .unwrap();
    assert!(body.contains("At most 5000 bytes"), "{body}");
    // The status says the limit too (the page shows it before sending).
    let (_, status) = app.client().get_json("/api/status").await;
    assert_eq!(status["max_message_bytes"], 1000, "{status}");
    let mut gateway = crate::gateway::gateway(&app.facade).await;
    let answer = gateway
        .status(msglog_proto::v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.max_message_bytes, 1000);
    // Each documented operation answers at its path (a wrong path or method would be a 404 or
    // a 405 here), and with a status the document declares for it.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let request = match method.as_str() {
                "get" => app.http.get(app.url(path)),
                "post" => app
                    .http
                    .post(app.url(path))
                    .json(&json!({ "message": format!("to {path}") })),
                other => panic!("undocumented method {other}"),
            };
            let status = request.send().await.unwrap().status();
            assert!(
                operation["responses"]
                    .get(status.as_str())
                    .is_some_and(|_| status.is_success()),
                "{method} {path} answered {status}"
            );
        }
    }
}

/// A logging that is healthy and pages, but whose live feed cannot be read (as when its frames
/// were larger than the facade could decode).
struct UnreadableFeed;

impl crate::helpers::StandInLogging for UnreadableFeed {
    async fn list_messages(
        &self,
        _request: msglog_proto::logging::ListMessagesRequest,
    ) -> Result<msglog_proto::logging::ListMessagesResponse, tonic::Status> {
        Ok(msglog_proto::logging::ListMessagesResponse::default())
    }

    fn open_watch(&self) -> Result<(), tonic::Status> {
        Err(tonic::Status::out_of_range(
            "decoded message length too large",
        ))
    }
}

#[tokio::test]
async fn status_tells_when_logging_serves_but_its_live_feed_cannot_be_read() {
    let logging =
        crate::helpers::spawn_logging_stand_in(crate::helpers::StandIn(UnreadableFeed)).await;
    let facade = spawn_facade(facade_settings(&logging.url(), "http://127.0.0.1:9")).await;
    let client = Client::new(&facade);
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let (status, body) = client.get_json("/api/status").await;
            assert_eq!(status, 200);
            if body["logging"]["up"] == false {
                break body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the status told logging's feed was unreadable within 10 s");
    let detail = body["logging"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("SERVING, but logging's live feed cannot be read (OUT_OF_RANGE"),
        "{body}"
    );
    assert_eq!(body["feed"]["live"], false, "{body}");
}
