//! `--chmod` of COPY and ADD: octal bits, or a symbolic mode (`u=rw,g=r`, `go-w`, `a+X`)
//! applied to each copied entry like chmod(1) (and Go's `dchapes/mode`, which BuildKit uses).
//!
//! Here so that the frontend (which checks the value at lowering) and the executor (which
//! applies it) share one parser.

use serde::{Deserialize, Serialize};

/// A parsed `--chmod` value: the mode to give copied entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chmod {
    /// Exactly these bits.
    Octal(u32),
    /// Clauses applied in order to the source entry's mode.
    Symbolic(Vec<ChmodClause>),
}

/// One `who op perms` clause of a symbolic mode (`go-w`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChmodClause {
    /// Bits the clause may touch: `u` 0o4700, `g` 0o2070, `o` 0o1007 (`a` or none: all).
    pub who: u32,
    /// `+`, `-` or `=`.
    pub op: char,
    /// `rwxXst` letters, or one of `u`, `g`, `o` (copy that class's bits).
    pub perms: String,
}

/// BuildKit's error for a `--chmod` value it cannot parse.
pub fn invalid_chmod(value: &str) -> String {
    format!("invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")
}

impl Chmod {
    /// Parses a `--chmod` value: all digits is octal (at most 0o7777), anything else must be
    /// a comma-separated list of symbolic clauses.
    pub fn parse(value: &str) -> Result<Chmod, String> {
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(value, 8) {
                Ok(m) if m <= 0o7777 => Ok(Chmod::Octal(m)),
                _ => Err(invalid_chmod(value)),
            };
        }
        let mut clauses = Vec::new();
        for part in value.split(',') {
            let who_end = part
                .find(['+', '-', '='])
                .ok_or_else(|| invalid_chmod(value))?;
            let mut who = 0;
            for c in part[..who_end].chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(invalid_chmod(value)),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            // One or more `op perms` actions follow the who letters (`u+r-w`).
            let mut rest = &part[who_end..];
            while let Some(op) = rest.chars().next() {
                let body = &rest[op.len_utf8()..];
                let end = body.find(['+', '-', '=']).unwrap_or(body.len());
                let perms = &body[..end];
                let copies = matches!(perms, "u" | "g" | "o");
                if !copies && !perms.chars().all(|c| "rwxXst".contains(c)) {
                    return Err(invalid_chmod(value));
                }
                clauses.push(ChmodClause {
                    who,
                    op,
                    perms: perms.to_string(),
                });
                rest = &body[end..];
            }
        }
        if clauses.is_empty() {
            return Err(invalid_chmod(value));
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode bits an entry gets, from its current bits (`X` adds execute only to
    /// directories and to files that already have an execute bit).
    pub fn apply(&self, current: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut mode = current & 0o7777;
        for c in clauses {
            let mut bits = 0;
            match c.perms.as_str() {
                "u" => bits = spread((mode >> 6) & 7),
                "g" => bits = spread((mode >> 3) & 7),
                "o" => bits = spread(mode & 7),
                p => {
                    for ch in p.chars() {
                        bits |= match ch {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || mode & 0o111 != 0 => 0o111,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        };
                    }
                }
            }
            let bits = bits & c.who;
            mode = match c.op {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => (mode & !c.who) | bits,
            };
        }
        mode
    }
}

/// `rwx` bits copied to all three classes.
fn spread(rwx: u32) -> u32 {
    rwx | (rwx << 3) | (rwx << 6)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn octal_symbolic_and_errors() {
        assert_eq!(Chmod::parse("0755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(Chmod::parse("0"), Ok(Chmod::Octal(0)));
        for bad in ["64a", "10000", "", "u+q", "z=r", "u"] {
            assert_eq!(Chmod::parse(bad), Err(invalid_chmod(bad)), "{bad}");
        }
        let m = |s: &str, cur, dir| Chmod::parse(s).unwrap().apply(cur, dir);
        assert_eq!(m("u=rw,g=r,o=r", 0o777, false), 0o644);
        assert_eq!(m("go-w", 0o666, false), 0o644);
        assert_eq!(m("a+X", 0o644, true), 0o755);
        assert_eq!(m("a+X", 0o644, false), 0o644);
        assert_eq!(m("a+X", 0o744, false), 0o755);
        assert_eq!(m("g=u", 0o740, false), 0o770);
        assert_eq!(m("u+s,+t", 0o755, false), 0o5755);
        assert_eq!(m("u=rwx-x", 0o000, false), 0o600);
        assert_eq!(m("=", 0o4755, false), 0);
        // Cases the frontend checked on its own before the parsers were merged.
        assert_eq!(Chmod::parse("644"), Ok(Chmod::Octal(0o644)));
        for bad in ["17777", "abc"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
        assert!(Chmod::parse("u=rw,g=").is_ok());
        assert_eq!(m("u=rw,g=r,o=", 0o777, false), 0o640);
        assert_eq!(m("go-w,+x", 0o666, false), 0o755);
    }
}
