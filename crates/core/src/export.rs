//! What every export writes the same way, whichever service serves it.

use std::borrow::Cow;

/// A text cell made safe to open in a spreadsheet (OWASP "CSV injection"): a cell that starts
/// with `=`, `+`, `-`, `@`, a tab or a carriage return could be read as a formula, so it gets a
/// leading `'`, which spreadsheets show as text. Numbers are written as numbers, never through
/// this; other text comes back borrowed and unchanged.
pub fn csv_safe(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_quoted() {
        for cell in ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "="] {
            let safe = csv_safe(cell);
            assert_eq!(safe, format!("'{cell}"), "{cell:?}");
            assert!(matches!(safe, Cow::Owned(_)));
        }
    }

    #[test]
    fn other_cells_are_left_alone() {
        for cell in ["", "entry-42", "a=b", " =1", "'=1", "Bold colour.\n-But flat.", "0195f0a4-0000-7000-8000-000000000000", "ünï"] {
            let safe = csv_safe(cell);
            assert_eq!(safe, cell);
            assert!(matches!(safe, Cow::Borrowed(_)), "{cell:?}");
        }
    }
}
