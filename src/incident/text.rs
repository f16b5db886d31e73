//! Making user text safe and short enough for the API that receives it.
//!
//! Slack mrkdwn treats `&`, `<` and `>` as control characters: `<!channel>` pings everyone and
//! `<https://evil|label>` disguises a link. Everything a person typed is escaped before it is put
//! into a message, and clamped to the receiving field's limit with a visible ellipsis so that no
//! request is ever refused for its length.

/// The ellipsis appended when text is cut.
pub const ELLIPSIS: char = '…';

/// Escape `&`, `<`, `>` as Slack requires for text inside messages.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Cut `text` to at most `max` characters (Unicode scalar values), ending with `…` when cut.
/// Never splits a character.
pub fn clamp(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push(ELLIPSIS);
    out
}

/// Escape, then clamp, without leaving a broken entity (`&am…`) at the end.
pub fn escape_and_clamp(text: &str, max: usize) -> String {
    let escaped = escape_mrkdwn(text);
    if escaped.chars().count() <= max {
        return escaped;
    }
    // Clamp the raw text until its escaped form fits, so entities are never cut in half.
    let mut keep = max.min(text.chars().count());
    loop {
        let candidate: String = text.chars().take(keep).collect();
        let esc = escape_mrkdwn(&candidate);
        if esc.chars().count() < max || keep == 0 {
            let mut s = esc;
            s.push(ELLIPSIS);
            return s;
        }
        keep -= 1;
    }
}

/// Cut to at most `max` UTF-16 code units: Notion counts `text.content` length this way
/// (JavaScript string length), so emoji outside the BMP count twice.
pub fn clamp_utf16(text: &str, max: usize) -> String {
    if text.encode_utf16().count() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.len_utf16();
        if used + w > max.saturating_sub(1) {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push(ELLIPSIS);
    out
}

/// Split text into pieces of at most `max` UTF-16 code units each, on character boundaries
/// (Notion's 2000-per-rich-text-item rule). Empty text gives no pieces.
pub fn split_utf16(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut cur = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.len_utf16();
        if used + w > max && !cur.is_empty() {
            pieces.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(c);
        used += w;
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    pieces
}

/// Collapse whitespace runs (including newlines) to single spaces; for one-line fields such as
/// channel topics and PagerDuty summaries.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_links_are_neutralised() {
        for (input, expected) in [
            ("<!channel>", "&lt;!channel&gt;"),
            ("<!here> now", "&lt;!here&gt; now"),
            ("<@U123>", "&lt;@U123&gt;"),
            (
                "<https://evil.example|a link>",
                "&lt;https://evil.example|a link&gt;",
            ),
            ("a & b", "a &amp; b"),
            ("&lt;", "&amp;lt;"),
        ] {
            assert_eq!(escape_mrkdwn(input), expected);
        }
    }

    #[test]
    fn unicode_survives_escaping() {
        let s = "Ünïcödé 🔥 שלום עולם 数据库";
        assert_eq!(escape_mrkdwn(s), s);
    }

    #[test]
    fn clamp_adds_a_visible_ellipsis_and_respects_the_limit() {
        assert_eq!(clamp("abcdef", 10), "abcdef");
        assert_eq!(clamp("abcdef", 4), "abc…");
        assert_eq!(clamp("🔥🔥🔥🔥", 3).chars().count(), 3);
    }

    #[test]
    fn escape_and_clamp_never_cuts_an_entity() {
        let s = escape_and_clamp(&"<".repeat(100), 10);
        assert!(s.chars().count() <= 10, "{s}");
        assert!(s.ends_with('…'));
        assert!(!s.contains("&l…") && !s.contains("&lt…") && !s.contains("&…"));
    }

    #[test]
    fn utf16_helpers_count_like_javascript() {
        let s = "😀".repeat(1500); // 3000 UTF-16 units
        let pieces = split_utf16(&s, 2000);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.encode_utf16().count() <= 2000));
        assert_eq!(pieces.concat(), s);
        assert!(clamp_utf16(&s, 2000).encode_utf16().count() <= 2000);
    }

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(one_line(" a\n\n b\tc "), "a b c");
    }
}
