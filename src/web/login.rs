//! The login name a student types: what we accept. It travels with each
//! request (in forms and links), never in the process, so two students at
//! the same moment each keep their own.

use unicode_normalization::UnicodeNormalization;

/// The longest login name, in characters.
pub const MAX_LOGIN_CHARS: usize = 64;

/// Why a login name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginProblem {
    /// Nothing typed, or only spaces.
    Empty,
    /// More than [`MAX_LOGIN_CHARS`] characters.
    TooLong,
    /// Control characters (newlines, tabs, escapes), which would break
    /// file names and log lines.
    ControlCharacters,
}

/// Checks a login name and returns it as it is kept: without surrounding
/// spaces and in Unicode's compatibility form (NFKC). A Japanese input method
/// left in full-width mode types ｓ１２３４５６７, and a Mac may send accents as
/// separate marks; either way it is the same student as s1234567, with the
/// same file names and results lines.
pub fn check_login(raw: Option<&str>) -> Result<String, LoginProblem> {
    let normalised: String = raw.unwrap_or("").nfkc().collect();
    let login = normalised.trim();
    if login.is_empty() {
        return Err(LoginProblem::Empty);
    }
    if login.chars().count() > MAX_LOGIN_CHARS {
        return Err(LoginProblem::TooLong);
    }
    if login.chars().any(|c| c.is_control() || is_hidden_format(c)) {
        return Err(LoginProblem::ControlCharacters);
    }
    Ok(login.to_string())
}

/// Characters that show nothing, or nothing but blank space that is not a
/// space, and so would make one student's name or file look like another's or
/// like no name at all: Unicode's default-ignorable code points (zero-width
/// spaces and joiners, direction marks and overrides, soft hyphens,
/// variation selectors, Hangul fillers, tag characters, byte-order marks),
/// the line and paragraph separators, the blank braille pattern, and the
/// interlinear annotation marks and U+FFFD, which stands for bytes that were
/// not UTF-8. The default-ignorable ranges are those of Unicode 16's
/// DerivedCoreProperties.txt.
pub(super) fn is_hidden_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffd}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_are_checked() {
        let long = "あ".repeat(MAX_LOGIN_CHARS);
        let too_long = "a".repeat(MAX_LOGIN_CHARS + 1);
        let cases: [(Option<&str>, Result<&str, LoginProblem>); 25] = [
            (Some("taro"), Ok("taro")),
            (Some("  s1234567 \t"), Ok("s1234567")),
            (Some("山田 花子"), Ok("山田 花子")),
            (Some("ｓ１２３４５６７"), Ok("s1234567")),
            (Some("\u{3000}山田\u{3000}花子\u{3000}"), Ok("山田 花子")),
            (Some("ﾔﾏﾀﾞ"), Ok("ヤマダ")),
            (Some("Jose\u{301}"), Ok("José")),
            (Some("ｔａ\u{200b}ｒｏ"), Err(LoginProblem::ControlCharacters)),
            (Some(long.as_str()), Ok(long.as_str())),
            (Some("<script>alert(1)</script>"), Ok("<script>alert(1)</script>")),
            (None, Err(LoginProblem::Empty)),
            (Some("   "), Err(LoginProblem::Empty)),
            (Some(too_long.as_str()), Err(LoginProblem::TooLong)),
            (Some("ta\nro"), Err(LoginProblem::ControlCharacters)),
            (Some("ta\u{1b}[31mro"), Err(LoginProblem::ControlCharacters)),
            (Some("ta\u{202e}ro"), Err(LoginProblem::ControlCharacters)),
            (Some("ta\u{200b}ro"), Err(LoginProblem::ControlCharacters)),
            (Some("\u{fffd}\u{fffd}"), Err(LoginProblem::ControlCharacters)),
            (Some("\u{3164}"), Err(LoginProblem::ControlCharacters)),
            (Some("\u{2800}"), Err(LoginProblem::ControlCharacters)),
            (Some("taro\u{e0041}"), Err(LoginProblem::ControlCharacters)),
            (Some("ta\u{fe0f}ro"), Err(LoginProblem::ControlCharacters)),
            (Some("ta\u{34f}ro"), Err(LoginProblem::ControlCharacters)),
            (Some("ta\u{2028}ro"), Err(LoginProblem::ControlCharacters)),
            (Some("太郎😀"), Ok("太郎😀")),
        ];
        for (input, expected) in cases {
            assert_eq!(check_login(input), expected.map(str::to_string), "{input:?}");
        }
    }
}
