//! Wire contracts shared by every part of the system.
//!
//! - [`logging`]: the protobuf messages of `logging.proto` (always built, so they compile to
//!   `wasm32-unknown-unknown`), with the tonic client and server stubs behind the `client`
//!   and `server` features.
//! - [`api`]: the JSON shapes and the paths of the facade's HTTP API, one definition for the
//!   server and the browser page.
//! - [`MessageText`]: a message text known to be non-blank and within a size limit, so neither
//!   service ever handles an unchecked string.

pub mod api;
mod text;

pub use text::{MessageText, MessageTextError};

/// Types generated from `logging.proto`. The file has no `package`, which keeps the original's
/// method paths (`/LoggingService/LogMessage`).
pub mod logging {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));

    /// `LogResponse.status` for a message stored by this call.
    pub const STATUS_LOGGED: &str = "Message logged successfully";
    /// `LogResponse.status` for a message whose id was already held.
    pub const STATUS_DUPLICATE: &str = "Duplicate message ignored";

    /// Encoded `FileDescriptorSet` of `logging.proto`, for gRPC server reflection.
    #[cfg(feature = "server")]
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/logging_descriptor.bin"));
}
