//! gRPC codes and statuses as people and tools read them: in error bodies, logs and metric
//! labels.

use tonic::Code;

/// The canonical upper-case name of a gRPC code, as gRPC tools print it.
pub(crate) fn code_name(code: Code) -> &'static str {
    msglog_proto::code_name(code.into())
}

/// A gRPC status for a person: `UNAVAILABLE: connection refused` (the code alone when there
/// is no message).
pub(crate) fn status_text(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        code_name(status.code()).to_owned()
    } else {
        format!("{}: {}", code_name(status.code()), status.message())
    }
}
