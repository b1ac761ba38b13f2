//! gRPC status codes by number, as gRPC tools print them (`UNAVAILABLE`): one table for the
//! services' error bodies, logs and metric labels and for the browser page, which reads codes
//! off the wire with no gRPC library.

/// The canonical upper-case names, indexed by code (0 `OK` to 16 `UNAUTHENTICATED`).
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of gRPC code `code`; `UNKNOWN` for a number outside the table, as gRPC reads it.
pub fn code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|index| NAMES.get(index))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The code named `name`, if it is one.
pub fn code_of(name: &str) -> Option<i32> {
    let index = NAMES.iter().position(|known| *known == name)?;
    i32::try_from(index).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_go_both_ways() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(14), "UNAVAILABLE");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(17), "UNKNOWN");
        assert_eq!(code_name(-1), "UNKNOWN");
        for code in 0..17 {
            assert_eq!(code_of(code_name(code)), Some(code));
        }
        assert_eq!(code_of("NETWORK"), None);
    }
}
