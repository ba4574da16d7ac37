//! Masking secret values in a RUN's output before it reaches the logs.
//!
//! A `RUN --mount=type=secret` that prints its secret (`cat /run/secrets/x`, `set -x`, an
//! error message quoting a token) must not leak it into kiln's progress output or the error
//! report. Output arrives in arbitrary chunks, so a value split across two reads is caught by
//! holding back a tail that could still become a match.

/// What a masked value is replaced with (as in CI systems' logs).
pub(crate) const MASK: &[u8] = b"****";

/// Values shorter than this are not masked: replacing every `a` or `42` in the output would
/// make logs unreadable while protecting nothing worth a secret.
pub(crate) const MIN_MASKED_LEN: usize = 4;

/// A streaming replacer of secret values in one output stream.
#[derive(Debug, Default)]
pub(crate) struct Masker {
    /// Values to hide, longest first (so a value containing another is masked whole).
    values: Vec<Vec<u8>>,
    /// Bytes held back because they are a prefix of some value.
    pending: Vec<u8>,
}

impl Masker {
    /// A masker for `secrets`: each value, and each of its lines, of at least
    /// [`MIN_MASKED_LEN`] bytes (a multi-line key printed line by line stays hidden).
    pub(crate) fn new(secrets: &[Vec<u8>]) -> Masker {
        let mut values: Vec<Vec<u8>> = Vec::new();
        for s in secrets {
            let trimmed = s.strip_suffix(b"\n").unwrap_or(s);
            let lines = trimmed
                .split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
            for v in std::iter::once(trimmed).chain(lines) {
                if v.len() >= MIN_MASKED_LEN && !values.iter().any(|x| x == v) {
                    values.push(v.to_vec());
                }
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Masker {
            values,
            pending: Vec::new(),
        }
    }

    /// Whether there is anything to mask.
    pub(crate) fn is_active(&self) -> bool {
        !self.values.is_empty()
    }

    /// Feeds `data`; returns what may be shown now (values replaced by [`MASK`]).
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if !self.is_active() {
            return data.to_vec();
        }
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let (out, rest) = self.scan(&buf, false);
        self.pending = buf[rest..].to_vec();
        out
    }

    /// Ends the stream: returns whatever was held back, masked.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.pending);
        self.scan(&buf, true).0
    }

    /// Replaces every value in `buf`; unless `last`, stops at the first position whose rest
    /// is a proper prefix of a value. Returns the output and where the held-back part starts.
    fn scan(&self, buf: &[u8], last: bool) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while i < buf.len() {
            let rest = &buf[i..];
            if let Some(v) = self.values.iter().find(|v| rest.starts_with(v)) {
                out.extend_from_slice(MASK);
                i += v.len();
                continue;
            }
            if !last
                && self
                    .values
                    .iter()
                    .any(|v| v.len() > rest.len() && v.starts_with(rest))
            {
                return (out, i);
            }
            out.push(buf[i]);
            i += 1;
        }
        (out, buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secrets: &[&str], chunks: &[&str]) -> String {
        let secrets: Vec<Vec<u8>> = secrets.iter().map(|s| s.as_bytes().to_vec()).collect();
        let mut m = Masker::new(&secrets);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(m.push(c.as_bytes()));
        }
        out.extend(m.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_whole_and_split_values() {
        assert_eq!(run(&["hunter22"], &["pw=hunter22\n"]), "pw=****\n");
        assert_eq!(run(&["hunter22"], &["pw=hun", "ter22!"]), "pw=****!");
        assert_eq!(
            run(&["hunter22"], &["h", "u", "n", "t", "e", "r", "2", "2"]),
            "****"
        );
        // A prefix that never completes is shown as it was.
        assert_eq!(run(&["hunter22"], &["pw=hunt", "ed\n"]), "pw=hunted\n");
        assert_eq!(run(&["hunter22"], &["end: hunte"]), "end: hunte");
        assert_eq!(run(&["hunter22"], &["hunter22hunter22"]), "********");
    }

    #[test]
    fn masks_lines_of_multiline_values_and_skips_short_ones() {
        let key = "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----\n";
        assert_eq!(run(&[key], &["line: AAAABBBBCCCC\n"]), "line: ****\n");
        assert_eq!(run(&[key], &[key]), "****\n");
        assert_eq!(run(&["abc"], &["abc abc"]), "abc abc");
        assert_eq!(run(&[], &["anything"]), "anything");
    }

    #[test]
    fn longest_value_wins() {
        assert_eq!(
            run(&["token", "token-extended"], &["token-extended token"]),
            "**** ****"
        );
    }

    #[test]
    fn output_is_unchanged_without_values() {
        let mut m = Masker::new(&[]);
        assert!(!m.is_active());
        assert_eq!(m.push(b"abc"), b"abc");
        assert!(m.finish().is_empty());
    }
}
