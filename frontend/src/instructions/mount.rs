//! `RUN --mount=…` (BuildKit's `instructions.parseMount`): CSV `key=value` fields, checked
//! against the mount type with BuildKit's messages. Values may need expansion, so the parse
//! keeps the raw fields ([`MountSpec`]) and [`MountSpec::resolve`] types them with an
//! expander; at parse time kiln resolves every mount whose values hold no `$`.

use kiln_ir::{CacheSharing, Span};
use serde::{Deserialize, Serialize};

use crate::error::with_suggestion;

/// `type=` of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// `bind` (the default): a path of the context, a stage or an image.
    #[default]
    Bind,
    /// `cache`: a persistent cache directory.
    Cache,
    /// `tmpfs`.
    Tmpfs,
    /// `secret`.
    Secret,
    /// `ssh`.
    Ssh,
}

const TYPES: &[&str] = &["bind", "cache", "tmpfs", "secret", "ssh"];

const KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

impl MountType {
    /// The name as written in `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// One `key[=value]` field of a `--mount` value, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountField {
    /// Lower-cased key.
    pub key: String,
    /// Raw value (unexpanded); `None` for a bare `ro`, `rw` or `required`.
    pub value: Option<String>,
}

/// A `--mount` flag as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// The fields in order.
    pub fields: Vec<MountField>,
    /// The mount typed with values as written, when no value needs expansion.
    pub literal: Option<Mount>,
    /// The `--mount=…` flag.
    pub span: Span,
}

/// A typed mount (BuildKit's `instructions.Mount`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mount {
    /// `type=`.
    pub kind: MountType,
    /// `from=`: a stage name, index or image (not expanded, BuildKit refuses `$`).
    pub from: Option<String>,
    /// `source=`/`src=`.
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`.
    pub target: Option<String>,
    /// Read-only: explicit `ro`/`rw`, else read-only except for cache and tmpfs.
    pub readonly: bool,
    /// `id=`.
    pub id: Option<String>,
    /// `sharing=` (cache only).
    pub sharing: Option<CacheSharing>,
    /// `required` (secret and ssh only).
    pub required: bool,
    /// `size=` in bytes (tmpfs only).
    pub size: Option<u64>,
    /// `mode=` (octal; cache, secret, ssh).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `env=` (secret only).
    pub env: Option<String>,
}

/// Splits a CSV record (fields separated by commas, `"…"` quoting with `""` for a quote).
fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    let mut in_quotes = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            '"' if at_start => in_quotes = true,
            '"' => {
                return Err(format!(
                    "failed to parse csv mounts: bare \" in non-quoted field: {value}"
                ))
            }
            _ => cur.push(c),
        }
        at_start = false;
    }
    if in_quotes {
        return Err(format!(
            "failed to parse csv mounts: extraneous or missing \" in quoted-field: {value}"
        ));
    }
    out.push(cur);
    Ok(out)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

/// docker/go-units `RAMInBytes`: `128m`, `1g`, `512k`, `1.5GiB`, `1024` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let err = || format!("invalid size: '{s}'");
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let num: f64 = s[..num_end].parse().map_err(|_| err())?;
    let unit = s[num_end..].trim_start().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(err()),
    };
    Ok((num * mult) as u64)
}

impl MountSpec {
    /// Splits a `--mount` value into fields; rejects `from=` with a variable and unknown keys.
    pub(crate) fn parse(value: &str, span: Span) -> Result<MountSpec, String> {
        let mut fields = Vec::new();
        for field in csv_fields(value)? {
            let (key, val) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
                None => (field.to_ascii_lowercase(), None),
            };
            if key == "from" {
                if let Some(v) = &val {
                    if v.find('$').is_some_and(|i| i != v.len() - 1) {
                        return Err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .into(),
                        );
                    }
                }
            }
            fields.push(MountField { key, value: val });
        }
        let mut spec = MountSpec {
            fields,
            literal: None,
            span,
        };
        let literal = !spec
            .fields
            .iter()
            .any(|f| f.value.as_deref().is_some_and(|v| v.contains('$')));
        if literal {
            spec.literal = Some(spec.resolve(&mut |v| Ok(v.to_string()))?);
        } else {
            // Keys never expand: report an unknown one now.
            for f in &spec.fields {
                if f.value.is_some() && !KEYS.contains(&f.key.as_str()) {
                    return Err(unexpected_key(&f.key, f));
                }
            }
        }
        Ok(spec)
    }

    /// Types the mount, expanding each value with `expand` first (`from` excepted), with
    /// BuildKit's messages for bad keys, types and values.
    pub fn resolve(
        &self,
        expand: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<Mount, String> {
        let mut m = Mount::default();
        let mut ro_auto = true;
        let mut sharing_set = false;
        for f in &self.fields {
            let key = f.key.as_str();
            let Some(raw) = &f.value else {
                match key {
                    "readonly" | "ro" => {
                        m.readonly = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.readonly = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                        m.required = true;
                    }
                    "required" => {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ))
                    }
                    _ => return Err(format!("invalid field '{key}' must be a key=value pair")),
                }
                continue;
            };
            let value = if key == "from" {
                raw.clone()
            } else {
                expand(raw)?
            };
            let bad_value = || format!("invalid value for {key}: {value}");
            match key {
                "type" => {
                    let lower = value.to_ascii_lowercase();
                    m.kind = match lower.as_str() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        _ => {
                            return Err(with_suggestion(
                                format!("unsupported mount type \"{value}\""),
                                &value,
                                TYPES,
                                true,
                            ))
                        }
                    };
                }
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => {
                    m.readonly = parse_bool(key, &value)?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = !parse_bool(key, &value)?;
                    ro_auto = false;
                }
                "required" => {
                    if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    m.required = parse_bool(key, &value)?;
                }
                "size" => {
                    if m.kind != MountType::Tmpfs {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    m.size = Some(parse_size(&value).map_err(|_| bad_value())?);
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    if m.kind != MountType::Cache {
                        return Err(format!(
                            "invalid cache sharing set for {} mount",
                            m.kind.as_str()
                        ));
                    }
                    m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                        "shared" => CacheSharing::Shared,
                        "private" => CacheSharing::Private,
                        "locked" => CacheSharing::Locked,
                        _ => return Err(format!("unsupported sharing value \"{value}\"")),
                    });
                    sharing_set = true;
                }
                "mode" => {
                    m.mode = Some(
                        u32::from_str_radix(&value, 8)
                            .map_err(|_| format!("invalid value {value} for mode"))?,
                    )
                }
                "uid" => {
                    m.uid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid value {value} for uid"))?,
                    )
                }
                "gid" => {
                    m.gid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid value {value} for gid"))?,
                    )
                }
                "env" => m.env = Some(value),
                _ => return Err(unexpected_key(key, f)),
            }
        }
        let file_info = matches!(
            m.kind,
            MountType::Secret | MountType::Ssh | MountType::Cache
        );
        if !file_info {
            for (name, set) in [
                ("mode", m.mode.is_some()),
                ("uid", m.uid.is_some()),
                ("gid", m.gid.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "{name} not allowed for \"{}\" type mounts",
                        m.kind.as_str()
                    ));
                }
            }
        }
        if ro_auto {
            m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
        }
        if sharing_set && m.kind != MountType::Cache {
            return Err(format!(
                "invalid cache sharing set for {} mount",
                m.kind.as_str()
            ));
        }
        if m.kind == MountType::Secret && m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        Ok(m)
    }
}

fn unexpected_key(key: &str, f: &MountField) -> String {
    let field = match &f.value {
        Some(v) => format!("{}={v}", f.key),
        None => f.key.clone(),
    };
    with_suggestion(
        format!("unexpected key '{key}' in '{field}'"),
        key,
        KEYS,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Result<Mount, String> {
        let s = MountSpec::parse(v, Span { start: 0, end: 0 })?;
        s.literal.ok_or_else(|| "not literal".into())
    }

    #[test]
    fn types_and_keys() {
        let m = p("target=/ctx").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly);
        let m =
            p("type=cache,target=/root/.cache,id=x,sharing=locked,mode=0751,uid=1001,gid=1002,ro")
                .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(
            (m.mode, m.uid, m.gid),
            (Some(0o751), Some(1001), Some(1002))
        );
        assert!(m.readonly);
        assert!(!p("type=cache,target=/c").unwrap().readonly);
        let m = p("type=tmpfs,target=/t,size=128m").unwrap();
        assert_eq!(m.size, Some(128 << 20));
        let m = p("type=secret,id=tok,dst=/s,env=TOKEN,required,mode=0400,uid=1,gid=2").unwrap();
        assert!(m.required);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = p("type=ssh,id=default,target=/sock,required=false").unwrap();
        assert_eq!(m.kind, MountType::Ssh);
        assert!(!m.required);
        let m = p("from=build,src=/out,destination=/out,rw").unwrap();
        assert!(!m.readonly);
        assert_eq!(m.from.as_deref(), Some("build"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            p("typ=cache").unwrap_err(),
            "unexpected key 'typ' in 'typ=cache' (did you mean type?)"
        );
        assert_eq!(
            p("type=tmp,target=/x").unwrap_err(),
            "unsupported mount type \"tmp\" (did you mean tmpfs?)"
        );
        assert_eq!(
            p("target=/x,size=1m").unwrap_err(),
            "unexpected key 'size' for mount type 'bind'"
        );
        assert_eq!(
            p("type=bind,target=/x,mode=0700").unwrap_err(),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            p("type=bind,sharing=locked").unwrap_err(),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            p("target=/x,foo").unwrap_err(),
            "invalid field 'foo' must be a key=value pair"
        );
        assert_eq!(
            p("from=$x,target=/x").unwrap_err(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert_eq!(
            p("type=cache,uid=x").unwrap_err(),
            "invalid value x for uid"
        );
        assert_eq!(p("type=$T,target=/x").unwrap_err(), "not literal");
        assert!(MountSpec::parse("typo=$x", Span { start: 0, end: 0 }).is_err());
    }

    #[test]
    fn resolve_expands() {
        let s = MountSpec::parse("type=$T,target=$D", Span { start: 0, end: 0 }).unwrap();
        let m = s
            .resolve(&mut |v| Ok(v.replace("$T", "cache").replace("$D", "/c")))
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/c"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert!(parse_size("x").is_err());
    }
}
