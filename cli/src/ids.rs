//! Reading a file of hotel ids: one per line, blank lines and `#` comments skipped, every
//! invalid line kept with its number and why.

use std::collections::HashSet;

#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Distinct valid ids, in file order.
    pub ids: Vec<i64>,
    /// Lines read (including blank and comment lines).
    pub lines: usize,
    /// Valid ids seen again on a later line.
    pub duplicates: usize,
    /// (line number from 1, the line, why it is refused).
    pub invalid: Vec<(usize, String, &'static str)>,
}

/// The largest id a JSON number carries exactly (the API refuses larger ones).
const MAX_ID: i64 = (1 << 53) - 1;

pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        out.lines += 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.parse::<i64>() {
            Ok(id) if (1..=MAX_ID).contains(&id) => {
                if seen.insert(id) {
                    out.ids.push(id);
                } else {
                    out.duplicates += 1;
                }
            }
            Ok(_) => out
                .invalid
                .push((i + 1, shorten(raw), "is not a positive hotel id")),
            Err(_) => out
                .invalid
                .push((i + 1, shorten(raw), "is not a whole number")),
        }
    }
    out
}

fn shorten(s: &str) -> String {
    let t = s.trim();
    match t.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_comments_duplicates_and_invalid_lines_with_their_numbers() {
        let p = parse("1641879\n\n# a comment\n 42 # inline\nabc\n-5\n42\n9007199254740993\n7");
        assert_eq!(p.ids, [1641879, 42, 7]);
        assert_eq!(p.lines, 9);
        assert_eq!(p.duplicates, 1);
        assert_eq!(
            p.invalid
                .iter()
                .map(|(n, t, _)| (*n, t.as_str()))
                .collect::<Vec<_>>(),
            [(5, "abc"), (6, "-5"), (8, "9007199254740993")]
        );
    }
}
