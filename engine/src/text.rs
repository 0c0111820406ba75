//! Text from devices, agents and browsers cut to a bound without splitting a character:
//! `String::truncate` panics when the bound falls inside one, and such text is chosen by
//! whoever sent it.

/// Cuts `s` to at most `max` bytes, at the last character boundary at or before `max`.
pub fn cut_to_bytes(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_never_splits_a_character() {
        for (text, max, want) in [
            ("abc", 5, "abc"),
            ("abc", 2, "ab"),
            ("aé", 2, "a"),
            ("aé", 3, "aé"),
            ("👍👍", 5, "👍"),
            ("👍", 0, ""),
        ] {
            let mut s = text.to_owned();
            cut_to_bytes(&mut s, max);
            assert_eq!(s, want, "{text} at {max}");
        }
        // Every bound in a long mixed text.
        let text = "a€b👍ç".repeat(20);
        for max in 0..text.len() + 2 {
            let mut s = text.clone();
            cut_to_bytes(&mut s, max);
            assert!(s.len() <= max && text.starts_with(&s));
        }
    }
}
