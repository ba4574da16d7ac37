//! Text in BuildKit's exact forms: Go's `%q` and `%v` of string slices, progress labels,
//! RUN history lines, paths and ports.

pub(crate) use crate::shell::go_quote;

/// Go's `fmt.Sprintf("%q", []string{…})`: `["a" "b"]`.
pub(crate) fn go_quote_list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", q.join(" "))
}

/// Go's `fmt.Sprintf("%v", []string{…})`: `[a b]`.
pub(crate) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration.String` of `nanos` (`0s`, `1.5s`, `1m30s`, `500ms`, `1h0m0s`).
pub(crate) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let n = nanos.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}\u{b5}s", frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", frac(n, 1_000_000));
    }
    let secs = n / 1_000_000_000;
    let sub = n % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// Go's `strconv.QuoteRune` of a small integer (how `%q` prints HEALTHCHECK's retries).
fn go_quote_rune(v: i64) -> String {
    let Some(c) = u32::try_from(v).ok().and_then(char::from_u32) else {
        return "'\\ufffd'".into();
    };
    match c {
        '\'' => "'\\''".into(),
        '\\' => "'\\\\'".into(),
        '\u{7}' => "'\\a'".into(),
        '\u{8}' => "'\\b'".into(),
        '\u{c}' => "'\\f'".into(),
        '\n' => "'\\n'".into(),
        '\r' => "'\\r'".into(),
        '\t' => "'\\t'".into(),
        '\u{b}' => "'\\v'".into(),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("'\\x{:02x}'", c as u32),
        c if c.is_control() => format!("'\\u{:04x}'", c as u32),
        c => format!("'{c}'"),
    }
}

/// BuildKit's `fmt.Sprintf("%q", healthcheck)`:
/// `&{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" '\x02'}`.
pub(crate) fn go_healthcheck(h: &kiln_oci::config::Healthcheck) -> String {
    let d = |v: Option<i64>| go_quote(&go_duration(v.unwrap_or(0)));
    format!(
        "&{{{} {} {} {} {} {}}}",
        go_quote_list(h.test.as_deref().unwrap_or_default()),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        d(h.start_interval),
        go_quote_rune(h.retries.unwrap_or(0)),
    )
}

/// BuildKit's `uppercaseCmd`: upper-cases the first word.
pub(crate) fn uppercase_cmd(s: &str) -> String {
    match s.split_once(' ') {
        Some((a, b)) => format!("{} {b}", a.to_uppercase()),
        None => s.to_uppercase(),
    }
}

/// BuildKit's `prefixCommand`: `[build 2/4] RUN make`, the count padded to its width.
pub(crate) fn prefix(stage: &str, index: usize, total: usize, text: &str) -> String {
    if total == 0 {
        return text.to_string();
    }
    let width = total.ilog10() as usize + 1;
    let name = if stage.is_empty() {
        String::new()
    } else {
        format!("{stage} ")
    };
    format!("[{name}{index:>width$}/{total}] {text}")
}

/// BuildKit's `runCommandString`: `|2 a=1 b=2 /bin/sh -c cmd`.
pub(crate) fn run_command_string(
    args: &[String],
    build_args: &[(String, Option<String>)],
    env: &[(String, String)],
) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in build_args {
        let value = env
            .iter()
            .find(|(ek, _)| ek == k)
            .map(|(_, ev)| ev.clone())
            .unwrap_or_else(|| v.clone().unwrap_or_default());
        match pairs.iter_mut().find(|(pk, _)| pk == k) {
            Some(p) => p.1 = value,
            None => pairs.push((k.clone(), value)),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    if !pairs.is_empty() {
        parts.push(format!("|{}", pairs.len()));
        parts.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// Go's `path.Clean` for absolute slash paths.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// BuildKit's `NormalizeWorkdir`: relative paths join the current working directory.
pub(crate) fn normalize_workdir(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean(path)
    } else {
        clean(&format!("/{current}/{path}"))
    }
}

/// BuildKit's `pathRelativeToWorkingDir`: absolute, cleaned, trailing `/` kept; `.` and an
/// empty destination mean the working directory.
pub(crate) fn copy_dest(cwd: &str, dest: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{cwd}/{dest}")
    };
    let mut out = clean(&joined);
    let keep_slash = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
    if keep_slash && out != "/" {
        out.push('/');
    }
    out
}

fn port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        None => s.parse().ok().map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
    }
}

/// BuildKit's `parsePortSpec`: `[ip:][host:]port[-end][/proto]` → `port/proto` entries.
pub(crate) fn parse_port(raw: &str) -> Result<Vec<String>, String> {
    let container = raw.rsplit(':').next().unwrap_or(raw);
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    if port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let proto = proto.to_lowercase();
    let proto = match proto.as_str() {
        "" => "tcp".to_string(),
        "tcp" | "udp" | "sctp" => proto,
        _ => return Err(format!("invalid proto: {proto}")),
    };
    let (a, b) = port_range(port).ok_or_else(|| format!("invalid containerPort: {port}"))?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let v = vec!["/bin/sh".to_string(), "-c".into(), "echo \"hi\"\n".into()];
        assert_eq!(go_quote_list(&v), r#"["/bin/sh" "-c" "echo \"hi\"\n"]"#);
        assert_eq!(go_list(&v[..2]), "[/bin/sh -c]");
    }

    #[test]
    fn go_texts() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(1_500), "1.5\u{b5}s");
        let h = kiln_oci::config::Healthcheck {
            test: Some(vec!["CMD-SHELL".into(), "true".into()]),
            interval: Some(5_000_000_000),
            retries: Some(2),
            ..Default::default()
        };
        assert_eq!(
            go_healthcheck(&h),
            r#"&{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" '\x02'}"#
        );
        assert_eq!(go_quote_rune(65), "'A'");
    }

    #[test]
    fn labels() {
        assert_eq!(prefix("", 2, 4, "RUN make"), "[2/4] RUN make");
        assert_eq!(prefix("build", 3, 12, "RUN x"), "[build  3/12] RUN x");
        assert_eq!(prefix("", 0, 0, "FROM x"), "FROM x");
        assert_eq!(uppercase_cmd("run echo"), "RUN echo");
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_workdir("/", "app"), "/app");
        assert_eq!(normalize_workdir("/test1", "test2/../x"), "/test1/x");
        assert_eq!(normalize_workdir("/a", "/b/"), "/b");
        assert_eq!(copy_dest("/app", "."), "/app/");
        assert_eq!(copy_dest("/app", ""), "/app/");
        assert_eq!(copy_dest("/app", "bin/"), "/app/bin/");
        assert_eq!(copy_dest("/app", "../x"), "/x");
        assert_eq!(copy_dest("/", "./"), "/");
        assert_eq!(copy_dest("/", "/dst"), "/dst");
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            parse_port("8000-8001").unwrap(),
            vec!["8000/tcp", "8001/tcp"]
        );
        assert_eq!(parse_port("80/xyz").unwrap_err(), "invalid proto: xyz");
    }

    #[test]
    fn run_history() {
        let ba = vec![
            ("a".to_string(), Some("1".to_string())),
            ("b".into(), None),
            ("a".into(), Some("2".into())),
        ];
        let env = vec![("a".to_string(), "2".to_string())];
        let args = vec!["/bin/sh".to_string(), "-c".into(), "x".into()];
        assert_eq!(
            run_command_string(&args, &ba, &env),
            "|2 a=2 b= /bin/sh -c x"
        );
        assert_eq!(run_command_string(&args, &[], &env), "/bin/sh -c x");
    }
}
