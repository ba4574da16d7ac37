//! Heredoc markers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) as BuildKit's parser finds them: only in
//! RUN, COPY and ADD (also as an ONBUILD trigger), not in exec form, not inside quotes.

/// A `[fd]<<[-]word` marker found in an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The delimiter with quotes and escapes removed.
    pub(crate) name: String,
    /// `false` when any part of the delimiter was quoted.
    pub(crate) expand: bool,
    /// `<<-`.
    pub(crate) chomp: bool,
    /// The digits before `<<`.
    pub(crate) fd: Option<u32>,
    /// Byte range of the marker word in the text it was found in.
    pub(crate) start: usize,
    /// End of that range.
    pub(crate) end: usize,
}

/// Splits on blanks outside quotes, keeping quotes and `\` escapes (BuildKit lexes the
/// line with `\` as escape, raw quotes and raw escapes).
fn raw_words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('\'') => {}
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => {
                if c.is_whitespace() {
                    if let Some(s) = start.take() {
                        out.push((s, i));
                    }
                    continue;
                }
                if start.is_none() {
                    start = Some(i);
                }
                match c {
                    '\\' => escaped = true,
                    '\'' | '"' => quote = Some(c),
                    _ => {}
                }
            }
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Removes quotes and escapes from a delimiter word; `None` if it is not one word.
fn unquote(word: &str) -> Option<(String, bool)> {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().unwrap_or('\\')),
            '\'' => {
                quoted = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(n @ ('"' | '\\' | '$')) => out.push(n),
                            Some(n) => {
                                out.push('\\');
                                out.push(n);
                            }
                            None => out.push('\\'),
                        },
                        _ => out.push(c),
                    }
                }
            }
            c if c.is_whitespace() => return None,
            c => out.push(c),
        }
    }
    Some((out, !quoted))
}

/// BuildKit's `ParseHeredoc`: `^(\d*)<<(-?)([^<]*)$` with a non-empty one-word delimiter.
pub(crate) fn marker(word: &str) -> Option<Marker> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let (name, expand) = unquote(rest)?;
    if name.is_empty() {
        return None;
    }
    Some(Marker {
        name,
        expand,
        chomp,
        fd: if digits > 0 {
            word[..digits].parse().ok()
        } else {
            None
        },
        start: 0,
        end: word.len(),
    })
}

/// Every heredoc marker of an instruction line, in order.
pub(crate) fn markers_in(text: &str) -> Vec<Marker> {
    if !text.contains("<<") {
        return Vec::new();
    }
    raw_words(text)
        .into_iter()
        .filter_map(|(s, e)| {
            marker(&text[s..e]).map(|m| Marker {
                start: s,
                end: e,
                ..m
            })
        })
        .collect()
}

/// Whether an instruction line may carry heredocs: RUN, COPY or ADD (directly or as an
/// ONBUILD trigger) in shell form.
pub(crate) fn can_contain(text: &str) -> bool {
    let (kw, rest) = split_keyword(text);
    let (kw, rest) = if kw.eq_ignore_ascii_case("onbuild") {
        split_keyword(rest)
    } else {
        (kw, rest)
    };
    if !["run", "copy", "add"]
        .iter()
        .any(|k| kw.eq_ignore_ascii_case(k))
    {
        return false;
    }
    let (_, at) = crate::syntax::flags(rest);
    !matches!(
        crate::ast::maybe_json(&rest[at..]),
        crate::ast::Json::Yes(_) | crate::ast::Json::NotStrings
    )
}

fn split_keyword(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (&text[..end], text[end..].trim_start())
}

/// Removes leading tabs from every line (`<<-`).
pub(crate) fn chomp(body: &str) -> String {
    body.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &str) -> Vec<(String, bool, bool, Option<u32>)> {
        markers_in(t)
            .into_iter()
            .map(|m| (m.name, m.expand, m.chomp, m.fd))
            .collect()
    }

    #[test]
    fn finds_markers() {
        assert_eq!(
            names("RUN cat <<EOF"),
            vec![("EOF".into(), true, false, None)]
        );
        assert_eq!(
            names("RUN 3<<IN1 4<<-'IN2' cat"),
            vec![
                ("IN1".into(), true, false, Some(3)),
                ("IN2".into(), false, true, Some(4))
            ]
        );
        assert_eq!(
            names("COPY <<\"A\" <<B /d/"),
            vec![
                ("A".into(), false, false, None),
                ("B".into(), true, false, None)
            ]
        );
        assert!(names("RUN echo \"<<NOHEREDOC\"").is_empty());
        assert!(names("RUN echo '<<EOF'").is_empty());
        assert!(names("RUN cat<<EOF").is_empty());
        assert!(names("RUN cat << EOF").is_empty());
        assert!(names("RUN cat <<<EOF").is_empty());
        assert_eq!(names("RUN cat <<EOF>out")[0].0, "EOF>out");
    }

    #[test]
    fn candidates() {
        assert!(can_contain("RUN <<EOF"));
        assert!(can_contain("copy --chmod=755 <<EOF /x"));
        assert!(can_contain("ONBUILD RUN <<EOF"));
        assert!(!can_contain("USER <<EOF"));
        assert!(!can_contain("RUN [\"cat\", \"<<EOF\"]"));
        assert!(!can_contain("ONBUILD USER <<EOF"));
    }

    #[test]
    fn chomps_tabs() {
        assert_eq!(chomp("\t\ta\n\tb\n  c\n"), "a\nb\n  c\n");
    }
}
