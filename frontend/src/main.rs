//! Mounts the page. Everything else is in the library.

fn main() {
    // A panic is told on the console, where the browser's tools show it: its message and where
    // it happened, passed to the console as they are (no formatting machinery in the page).
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic");
        let (file, line) = info
            .location()
            .map_or(("", 0), |location| (location.file(), location.line()));
        web_sys::console::error_4(
            &"panicked:".into(),
            &message.into(),
            &file.into(),
            &line.into(),
        );
    }));
    // The page draws itself into the body (see the library's `dom`): Leptos runs its reactive
    // system, under an owner that lives as long as the page.
    leptos::mount::mount_to_body(|| {
        if let Some(body) = leptos::prelude::document().body() {
            msglog_frontend::page(&body);
        }
    });
}
