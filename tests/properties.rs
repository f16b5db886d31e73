//! Property tests of the pure code that bad input reaches: escaping and clamping of user text
//! (`incident::text`) and incident / channel names (`incident::naming`).

use chrono::NaiveDate;
use incd::incident::naming::{
    draw_name, is_valid_channel_name, IncidentName, Wordlist, BUILTIN_ADJECTIVES, BUILTIN_ANIMALS,
    MAX_CHANNEL_NAME,
};
use incd::incident::text::{
    clamp, clamp_utf16, escape_and_clamp, escape_mrkdwn, one_line, split_utf16, ELLIPSIS,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Text a hostile or careless person might type: mention and link syntax, entities, emoji
/// outside the BMP, combining marks, right-to-left text, control characters, anything.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<!channel>".to_string()),
        Just("<!here>".to_string()),
        Just("<!everyone>".to_string()),
        Just("<!subteam^S0123|@oncall>".to_string()),
        Just("<@U0ALICE>".to_string()),
        Just("<#C0GENERAL|general>".to_string()),
        Just("<https://evil.example|docs>".to_string()),
        Just("<mailto:a@b.c>".to_string()),
        Just("&lt;!channel&gt;".to_string()),
        Just("&amp;".to_string()),
        Just("&".to_string()),
        Just("<".to_string()),
        Just(">".to_string()),
        Just("|".to_string()),
        Just("😀".to_string()),
        Just("👩‍👩‍👧".to_string()),
        Just("e\u{301}".to_string()),
        Just("שלום".to_string()),
        Just("\n\t ".to_string()),
        "[a-z ]{0,12}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// Reverses [`escape_mrkdwn`] (only the three entities it makes).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every `&` starts one of the three entities Slack defines.
fn entities_whole(s: &str) -> bool {
    s.match_indices('&').all(|(i, _)| {
        let rest = &s[i..];
        rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;")
    })
}

/// No Slack control sequence (mention, broadcast, channel or link) can be formed.
fn no_control_sequences(s: &str) -> bool {
    !s.contains('<') && !s.contains('>')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn escaped_text_has_no_mention_or_link_and_round_trips(s in hostile_text()) {
        let e = escape_mrkdwn(&s);
        prop_assert!(no_control_sequences(&e), "{e}");
        prop_assert!(entities_whole(&e), "{e}");
        prop_assert_eq!(unescape(&e), s);
    }

    #[test]
    fn escape_and_clamp_fits_the_limit_and_never_cuts_an_entity(
        s in hostile_text(),
        max in 1usize..300,
    ) {
        let out = escape_and_clamp(&s, max);
        prop_assert!(out.chars().count() <= max, "{} chars > {max}: {out}", out.chars().count());
        prop_assert!(no_control_sequences(&out), "{out}");
        prop_assert!(entities_whole(&out), "{out}");
        let whole = escape_mrkdwn(&s);
        if whole.chars().count() <= max {
            prop_assert_eq!(out, whole);
        } else {
            prop_assert!(out.ends_with(ELLIPSIS));
            let kept = unescape(out.trim_end_matches(ELLIPSIS));
            prop_assert!(s.starts_with(&kept), "{kept:?} is not a prefix of the input");
        }
    }

    #[test]
    fn clamp_respects_the_character_limit_and_keeps_a_prefix(
        s in hostile_text(),
        max in 1usize..300,
    ) {
        let out = clamp(&s, max);
        prop_assert!(out.chars().count() <= max);
        if s.chars().count() <= max {
            prop_assert_eq!(out, s);
        } else {
            prop_assert!(out.ends_with(ELLIPSIS));
            prop_assert!(s.starts_with(out.trim_end_matches(ELLIPSIS)));
        }
    }

    #[test]
    fn notion_clamp_counts_utf16_units_like_javascript(
        s in hostile_text(),
        max in 1usize..300,
    ) {
        let out = clamp_utf16(&s, max);
        prop_assert!(out.encode_utf16().count() <= max, "{} units > {max}", out.encode_utf16().count());
        if s.encode_utf16().count() <= max {
            prop_assert_eq!(out, s);
        } else {
            prop_assert!(out.ends_with(ELLIPSIS));
            prop_assert!(s.starts_with(out.trim_end_matches(ELLIPSIS)));
        }
    }

    #[test]
    fn notion_split_keeps_every_character_and_each_piece_within_the_limit(
        s in hostile_text(),
        max in 2usize..64,
    ) {
        let pieces = split_utf16(&s, max);
        prop_assert_eq!(pieces.concat(), s.clone());
        for p in &pieces {
            prop_assert!(!p.is_empty());
            prop_assert!(p.encode_utf16().count() <= max, "{p:?} over {max} units");
        }
        prop_assert_eq!(pieces.is_empty(), s.is_empty());
    }

    #[test]
    fn one_line_text_has_no_line_breaks_or_runs_of_spaces(s in hostile_text()) {
        let out = one_line(&s);
        prop_assert!(!out.contains("  "), "{out:?}");
        prop_assert!(!out.contains('\n') && !out.contains('\r') && !out.contains('\t'));
        prop_assert_eq!(out.trim(), out.as_str());
        prop_assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            s.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn drawn_names_make_valid_lowercase_channel_names_with_the_date(
        seed in any::<u64>(),
        days in 0i64..(400 * 365),
        used_count in 0usize..50,
    ) {
        let adjectives = Wordlist::parse(BUILTIN_ADJECTIVES).unwrap();
        let animals = Wordlist::parse(BUILTIN_ANIMALS).unwrap();
        let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
        let mut rng = StdRng::seed_from_u64(seed);
        // Some names already taken today.
        let mut used = std::collections::HashSet::new();
        for _ in 0..used_count {
            if let Some(n) = draw_name(date, &adjectives, &animals, &mut rng, 1, |_| false) {
                used.insert(n);
            }
        }
        let name = draw_name(date, &adjectives, &animals, &mut rng, 50, |n| used.contains(n));
        let name = name.expect("50 draws from the built-in lists cannot all collide with 50 names");
        prop_assert!(!used.contains(&name));
        check_name(&name, date)?;
    }

    #[test]
    fn any_accepted_word_list_keeps_names_within_slack_limits(
        adjectives in prop::collection::btree_set("[a-z]{1,24}", 20..40),
        animals in prop::collection::btree_set("[a-z]{1,24}", 20..40),
        seed in any::<u64>(),
    ) {
        let adj = Wordlist::parse(&adjectives.into_iter().collect::<Vec<_>>().join("\n")).unwrap();
        let ani = Wordlist::parse(&animals.into_iter().collect::<Vec<_>>().join("\n")).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let name = draw_name(date, &adj, &ani, &mut rng, 1, |_| false).unwrap();
        check_name(&name, date)?;
    }

    #[test]
    fn word_lists_refuse_anything_but_lowercase_ascii_words(
        good in prop::collection::vec("[a-z]{1,24}", 25),
        bad in "[a-z]{0,5}[^a-z\\s#][a-z]{0,5}",
        at in 0usize..25,
    ) {
        let mut lines = good;
        lines[at] = bad.clone();
        let bad_word = bad.trim();
        prop_assume!(!bad_word.is_empty() && !bad_word.starts_with('#'));
        prop_assert!(Wordlist::parse(&lines.join("\n")).is_err(), "{bad:?} was accepted");
    }
}

/// `incd-YYYYMMDD-adjective-animal` and its `-resolved` form are valid Slack channel names.
fn check_name(name: &IncidentName, date: NaiveDate) -> Result<(), TestCaseError> {
    let day = date.format("%Y%m%d").to_string();
    for channel in [name.channel_name(), name.resolved_channel_name()] {
        prop_assert!(is_valid_channel_name(&channel), "{channel}");
        prop_assert!(channel.len() <= MAX_CHANNEL_NAME, "{channel}");
        prop_assert!(channel.len() <= 80, "{channel}");
        prop_assert!(
            channel
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{channel}"
        );
        prop_assert!(channel.starts_with(&format!("incd-{day}-")), "{channel}");
    }
    let parts: Vec<&str> = name.as_str().split('-').collect();
    prop_assert_eq!(parts.len(), 3, "{}", name.as_str());
    prop_assert_eq!(parts[0], day.as_str());
    Ok(())
}
