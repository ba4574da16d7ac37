//! Entitlements: what `kiln build --allow` lets RUN instructions ask for.

/// What `kiln build --allow …` granted (BuildKit's entitlements).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `security.insecure`: `RUN --security=insecure` gets every capability and no seccomp
    /// filter.
    pub insecure: bool,
    /// `network.host`: `RUN --network=host` may run.
    pub network_host: bool,
}

/// The name of the `security.insecure` entitlement.
pub const SECURITY_INSECURE: &str = "security.insecure";
/// The name of the `network.host` entitlement.
pub const NETWORK_HOST: &str = "network.host";

impl Entitlements {
    /// Grants one entitlement by its BuildKit name; returns an error text for an unknown name.
    pub fn allow(&mut self, name: &str) -> Result<(), String> {
        match name {
            SECURITY_INSECURE => self.insecure = true,
            NETWORK_HOST => self.network_host = true,
            other => return Err(format!("invalid entitlement: {other}")),
        }
        Ok(())
    }

    /// BuildKit's error for a RUN that needs an entitlement that was not granted
    /// (`security.insecure is not allowed`).
    pub fn not_allowed(name: &str) -> String {
        format!("{name} is not allowed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let mut e = Entitlements::default();
        e.allow("network.host").unwrap();
        assert_eq!(
            e,
            Entitlements {
                insecure: false,
                network_host: true
            }
        );
        e.allow("security.insecure").unwrap();
        assert!(e.insecure);
        assert_eq!(
            e.allow("device").unwrap_err(),
            "invalid entitlement: device"
        );
        assert_eq!(
            Entitlements::not_allowed(SECURITY_INSECURE),
            "security.insecure is not allowed"
        );
    }
}
