//! Splitting a script into statements at `;` (outside quotes and comments), and rewriting a
//! statement's text in place so that positions in errors stay those of the whole script.

use sqlparser::tokenizer::Token;

use super::SqlError;

/// One statement of a script: its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First byte.
    pub start: usize,
    /// One past the last byte (before the `;`).
    pub end: usize,
}

impl Segment {
    /// The whole script with everything but this statement blanked (newlines kept), so that
    /// a parser's line and column point into the script.
    pub fn blanked(&self, script: &str) -> String {
        script
            .char_indices()
            .map(|(i, c)| {
                if (self.start..self.end).contains(&i) || c == '\n' {
                    c
                } else {
                    ' '
                }
            })
            .collect()
    }
}

/// Splits a script at `;`s outside quotes and comments; statements with only whitespace and
/// comments are left out.
pub fn split(script: &str) -> Result<Vec<Segment>, SqlError> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let mut content = false;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"' | b'`') => {
                content = true;
                let open = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            let (line, column) = position(script, open);
                            return Err(SqlError::at(line, column, "unterminated quoted text"));
                        }
                        Some(&b) if b == q && bytes.get(i + 1) == Some(&q) => i += 2,
                        Some(&b) if b == q => break,
                        Some(_) => i += 1,
                    }
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let open = i;
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                if i + 1 >= bytes.len() {
                    let (line, column) = position(script, open);
                    return Err(SqlError::at(line, column, "unterminated comment"));
                }
                i += 2;
                continue;
            }
            b';' => {
                if content {
                    out.push(Segment { start, end: i });
                }
                start = i + 1;
                content = false;
            }
            b if !b.is_ascii_whitespace() => content = true,
            _ => {}
        }
        i += 1;
    }
    if content {
        out.push(Segment {
            start,
            end: bytes.len(),
        });
    }
    Ok(out)
}

/// The line and column (1-based, in characters) of a byte offset.
pub fn position(script: &str, offset: usize) -> (usize, usize) {
    let before = &script[..offset.min(script.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The byte offset of a line and column (1-based, in characters).
fn offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let mut l = 1;
    let mut c = 1;
    for (i, ch) in text.char_indices() {
        if l == line && c == column {
            return Some(i);
        }
        if ch == '\n' {
            l += 1;
            c = 1;
        } else {
            c += 1;
        }
    }
    None
}

/// Blanks words found by the tokenizer (their positions, and their lengths in bytes).
pub fn blank_words(text: &mut String, toks: &[(String, Token, usize, usize)], lens: &[usize]) {
    for (t, len) in toks.iter().zip(lens) {
        if let Some(at) = offset(text, t.2, t.3) {
            text.replace_range(at..at + len, &" ".repeat(*len));
        }
    }
}

/// Replaces a word with text of the same length.
pub fn replace_word(text: &mut String, tok: &(String, Token, usize, usize), with: &str) {
    if let Some(at) = offset(text, tok.2, tok.3) {
        text.replace_range(at..at + with.len(), with);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let s = "SELECT ';' FROM a; -- x; y\n/* ; */ SELECT 2;;  ";
        let segs = split(s).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(&s[segs[0].start..segs[0].end], "SELECT ';' FROM a");
        assert!(s[segs[1].start..segs[1].end].trim().ends_with("SELECT 2"));
        assert!(split("SELECT 'x").is_err());
        assert_eq!(position("ab\ncd", 4), (2, 2));
        let b = segs[1].blanked(s);
        assert_eq!(b.len(), s.len());
        assert!(!b.contains("FROM a"));
    }
}
