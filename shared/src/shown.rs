//! Data shown to people: names, ids and errors come from agents' logs, and a newline or a terminal
//! escape in one must not forge a line of a report or an email, or reach a terminal.

use std::borrow::Cow;

/// `s` on one line with nothing a terminal or mail client would act on: control characters
/// (newlines, escapes) and the bidirectional overrides that reorder what is shown become spaces.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if is_hidden(c) { ' ' } else { c }).collect())
}

fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_become_spaces() {
        assert_eq!(one_line("agent\n\u{1b}[2Jx\u{202e}y\r"), "agent  [2Jx y ");
        assert!(matches!(one_line("sales-agent é 中文"), Cow::Borrowed("sales-agent é 中文")));
    }
}
