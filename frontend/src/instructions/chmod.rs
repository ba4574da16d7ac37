//! `--chmod=` of COPY and ADD: an octal mode (`0755`) or a symbolic one (`u=rw,g=r`,
//! `a+X`), as BuildKit accepts since Dockerfile 1.14.

use serde::{Deserialize, Serialize};

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chmod {
    /// `0755`: the mode bits, at most `0o7777`.
    Octal(u32),
    /// `u=rw,g=r`: clauses applied in order to each file's current mode.
    Symbolic(Vec<ChmodClause>),
}

/// One `who op perms` clause of a symbolic mode (`go-w`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChmodClause {
    /// Bits of who: `u` 0o4700, `g` 0o2070, `o` 0o1007; all of them for `a` or none given.
    pub who: u32,
    /// `+`, `-` or `=`.
    pub op: char,
    /// Letters after the operator (`rwxXst` or one of `ugo`).
    pub perms: String,
}

impl Chmod {
    /// Parses a `--chmod` value (already expanded), with BuildKit's error text.
    pub fn parse(value: &str) -> Result<Chmod, String> {
        let err = || {
            format!(
                "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
            )
        };
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(value, 8) {
                Ok(m) if m <= 0o7777 => Ok(Chmod::Octal(m)),
                _ => Err(err()),
            };
        }
        let mut clauses = Vec::new();
        for part in value.split(',') {
            let who_end = part.find(['+', '-', '=']).ok_or_else(err)?;
            let mut who = 0;
            for c in part[..who_end].chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(err()),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            // One or more `op perms` actions follow the who letters.
            let mut rest = &part[who_end..];
            while let Some(op) = rest.chars().next() {
                let body = &rest[1..];
                let end = body.find(['+', '-', '=']).unwrap_or(body.len());
                let perms = &body[..end];
                let is_copy = matches!(perms, "u" | "g" | "o");
                if !is_copy && !perms.chars().all(|c| "rwxXst".contains(c)) {
                    return Err(err());
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
            return Err(err());
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode a file gets: `current` is its mode bits before the copy (0o7777 part used).
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
                _ => (mode & !(c.who & 0o7777)) | bits,
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
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(Chmod::parse("0755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(Chmod::parse("644"), Ok(Chmod::Octal(0o644)));
        assert!(Chmod::parse("17777").is_err());
        assert!(Chmod::parse("abc").is_err());
        assert!(Chmod::parse("").is_err());
        assert!(Chmod::parse("u=rw,g=").is_ok());
        assert_eq!(
            Chmod::parse("u+q").unwrap_err(),
            "invalid chmod parameter: 'u+q'. it should be octal string and between 0 and 07777"
        );
        let m = Chmod::parse("u=rw,g=r,o=").unwrap();
        assert_eq!(m.apply(0o777, false), 0o640);
        let m = Chmod::parse("a+X").unwrap();
        assert_eq!(m.apply(0o644, true), 0o755);
        assert_eq!(m.apply(0o644, false), 0o644);
        assert_eq!(m.apply(0o744, false), 0o755);
        let m = Chmod::parse("go-w,+x").unwrap();
        assert_eq!(m.apply(0o666, false), 0o755);
        let m = Chmod::parse("g=u").unwrap();
        assert_eq!(m.apply(0o740, false), 0o770);
    }
}
