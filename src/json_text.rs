//! Scanning JSON text for what ends a plain run of a string: a quote, a backslash or a control
//! byte. Shared by the produce body parser (where a string's raw run ends) and Connect's record
//! text (whether a string can be written between quotes as it is).

/// Whether `b` ends the plain run of a JSON string: a quote, a backslash or a control byte.
/// Written with `|`, not `||`, so that a block of them compiles to a few vector instructions.
const fn is_stop(b: u8) -> bool {
    (b == b'"') | (b == b'\\') | (b < 0x20)
}

/// Position of the first byte of `s` that ends a plain string run, in one pass: 16-byte blocks
/// tested branch-free (the compiler turns each into a few vector instructions), then the block
/// that holds it byte by byte.
pub(crate) fn first_stop(s: &[u8]) -> Option<usize> {
    const BLOCK: usize = 16;
    let mut at = 0;
    for block in s.chunks_exact(BLOCK) {
        if block.iter().fold(false, |any, &b| any | is_stop(b)) {
            break;
        }
        at += BLOCK;
    }
    s[at..].iter().position(|&b| is_stop(b)).map(|p| at + p)
}

/// Whether `s` as a JSON string needs an escape (what serde_json escapes): with none, its text
/// between two quotes is its JSON text.
pub(crate) fn needs_escape(s: &[u8]) -> bool {
    first_stop(s).is_some()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::needs_escape;

    proptest! {
        /// A string that needs no escape is, between two quotes, exactly what serde_json writes
        /// for it; one that needs one is not.
        #[test]
        fn without_an_escape_the_quoted_string_is_its_json_text(s in "(\\PC|[\"\\\\\t\n\x00\x1f])*") {
            let quoted = format!("\"{s}\"");
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(!needs_escape(s.as_bytes()), json == quoted);
        }
    }
}
