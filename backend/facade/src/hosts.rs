//! The `Host`s the facade answers to.
//!
//! A page on any site can make a browser send requests to the facade under a name of the
//! page's own (DNS rebinding: the name first resolves to the site, then to the facade's
//! address), and the browser then lets that page read the answers, as they seem to come from
//! its own origin. So the facade answers only to names it knows: IP literals, `localhost` (and
//! names under `.localhost`), and the names given by `--allowed-hosts`; a request for any other
//! host is refused with a JSON 421 (`PERMISSION_DENIED` to a native gRPC client), on every
//! route and door. A request with no host at all (no
//! browser sends one) is served.

use std::{net::IpAddr, sync::Arc};

use axum::response::{IntoResponse as _, Response};
use http::{
    HeaderMap, Uri,
    header::{CONTENT_TYPE, HOST},
};
use msglog_common::http_edge::RefuseLayer;

use crate::error::AppError;

/// The names the facade answers to besides IP literals and `localhost`.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    /// Lower-case names; one starting with `.` allows every name under it.
    names: Arc<[String]>,
    /// `*` was given: every host is allowed (behind a proxy that checks them itself).
    any: bool,
}

impl AllowedHosts {
    /// The names given (as `--allowed-hosts` takes them): exact names, `.example.com` for every
    /// name under `example.com`, or `*` for any.
    pub(crate) fn new(names: &[String]) -> Self {
        let names: Vec<String> = names
            .iter()
            .map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        Self {
            any: names.iter().any(|name| name == "*"),
            names: names.into(),
        }
    }

    /// Whether the facade answers to `host` (a `Host` value, port and all).
    pub(crate) fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let name = strip_port(host).trim_end_matches('.');
        let ip = name
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(name);
        if ip.parse::<IpAddr>().is_ok() || is_or_ends_with(name, "localhost", ".localhost") {
            return true;
        }
        self.names
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(parent) => is_or_ends_with(name, parent, allowed),
                None => name.eq_ignore_ascii_case(allowed),
            })
    }

    /// Refuses every request for a host the facade does not answer to.
    pub(crate) fn layer(
        self,
    ) -> RefuseLayer<impl Fn(&Uri, &HeaderMap) -> Option<Response> + Clone + Send + Sync> {
        RefuseLayer::new(move |uri: &Uri, headers: &HeaderMap| {
            let host = uri
                .authority()
                .map(|authority| authority.as_str())
                .or_else(|| headers.get(HOST).and_then(|value| value.to_str().ok()))
                .or_else(|| headers.get(HOST).map(|_| "(not ASCII)"))?;
            if self.allows(host) {
                return None;
            }
            tracing::info!(
                host = msglog_common::bounded::shorten_bytes(host.as_bytes(), 64).as_str(),
                "request for an unknown host refused"
            );
            let error =
                AppError::UnknownHost(msglog_common::bounded::shorten_bytes(host.as_bytes(), 64));
            // A native gRPC client reads its answer as a gRPC status.
            let grpc = headers.get(CONTENT_TYPE).is_some_and(|value| {
                value.as_bytes().starts_with(b"application/grpc")
                    && !value.as_bytes().starts_with(b"application/grpc-web")
            });
            Some(if grpc {
                tonic::Status::from(error).into_http()
            } else {
                error.into_response()
            })
        })
    }
}

/// Whether `name` is `exact` or ends with `suffix`, ignoring ASCII case (host names compare
/// so; `exact` and `suffix` are lower case), without a lower-cased copy per request.
fn is_or_ends_with(name: &str, exact: &str, suffix: &str) -> bool {
    let name = name.as_bytes();
    name.eq_ignore_ascii_case(exact.as_bytes())
        || (name.len() >= suffix.len()
            && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes()))
}

/// `host` without its port: `name:8080` → `name`, `[::1]:8080` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon)
            if !host[colon..].contains(']')
                && host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..colon]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_localhost_and_the_names_given_are_allowed_and_nothing_else() {
        let hosts = AllowedHosts::new(&[
            "msglog.example.com".to_owned(),
            ".internal.example".to_owned(),
        ]);
        for allowed in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "10.1.2.3:80",
            "[::1]:8080",
            "[::1]",
            "localhost",
            "LOCALHOST:8080",
            "app.localhost",
            "msglog.example.com",
            "MsgLog.Example.com.:443",
            "a.internal.example",
            "internal.example",
        ] {
            assert!(hosts.allows(allowed), "{allowed}");
        }
        for refused in [
            "evil.example",
            "msglog.example.com.evil.example",
            "evilinternal.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
            "x",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        assert!(AllowedHosts::new(&["*".to_owned()]).allows("anything.example"));
    }
}
