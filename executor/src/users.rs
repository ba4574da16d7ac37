//! `/etc/passwd` and `/etc/group` of a rootfs: USER and `--chown` resolution.
//!
//! Semantics follow runc's `libcontainer/user.GetExecUser` (which BuildKit uses for RUN) and
//! BuildKit's `file/user_linux.go` `readUser` (for COPY `--chown`).

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    pub(crate) name: String,
    pub(crate) gid: u32,
    pub(crate) members: Vec<String>,
}

/// The identity a RUN executes as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Supplementary groups (the primary group first).
    pub(crate) groups: Vec<u32>,
    pub(crate) home: String,
}

/// Parses passwd text; malformed lines are skipped (as libcontainer does).
pub(crate) fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// Parses group text; malformed lines are skipped.
pub(crate) fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves a USER value (`""`, `name`, `uid`, `name:group`, `uid:gid`) against the rootfs
/// databases. Unknown numeric ids are fine; unknown names are errors.
pub(crate) fn resolve_exec_user(
    spec: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ExecUser, String> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = passwd.iter().find(|p| match numeric_uid {
        Some(uid) => p.uid == uid,
        None => p.name == user_part,
    });
    let (uid, mut gid, home, name) = match (entry, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, e.home.clone(), Some(e.name.clone())),
        (None, Some(uid)) => (uid, 0, "/".to_string(), None),
        (None, None) => {
            return Err(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            ))
        }
    };
    let mut sgids = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?,
            };
        }
        _ => {
            if let Some(name) = &name {
                sgids.extend(
                    groups
                        .iter()
                        .filter(|e| e.members.iter().any(|m| m == name))
                        .map(|e| e.gid),
                );
            }
        }
    }
    let mut all = vec![gid];
    for g in sgids {
        if !all.contains(&g) {
            all.push(g);
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        groups: all,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Resolves COPY `--chown` (BuildKit's `readUser`): a name uses its passwd uid and primary
/// gid, a numeric user without group uses the uid as gid.
pub(crate) fn resolve_chown(
    user: &str,
    group: Option<&str>,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<(u32, u32), String> {
    let (uid, mut gid) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => passwd
            .iter()
            .find(|p| p.name == user)
            .map(|p| (p.uid, p.gid))
            .ok_or_else(|| {
                format!("unable to find user {user}: no matching entries in passwd file")
            })?,
    };
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        };
    }
    Ok((uid, gid))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:app\n";

    #[test]
    fn exec_user_forms() {
        let p = parse_passwd(PASSWD);
        let g = parse_group(GROUP);
        let u = resolve_exec_user("app", &p, &g).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups.clone()),
            (1000, 1000, vec![1000, 50, 10])
        );
        assert_eq!(u.home, "/home/app");
        let u = resolve_exec_user("app:staff", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.groups.clone()), (1000, 50, vec![50]));
        let u = resolve_exec_user("4242", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        let u = resolve_exec_user("4242:77", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 77));
        let u = resolve_exec_user("", &p, &g).unwrap();
        assert_eq!((u.uid, u.home.as_str()), (0, "/root"));
        assert!(resolve_exec_user("nobody", &p, &g).is_err());
    }

    #[test]
    fn chown_forms() {
        let p = parse_passwd(PASSWD);
        let g = parse_group(GROUP);
        assert_eq!(resolve_chown("10", None, &p, &g).unwrap(), (10, 10));
        assert_eq!(resolve_chown("app", None, &p, &g).unwrap(), (1000, 1000));
        assert_eq!(
            resolve_chown("app", Some("staff"), &p, &g).unwrap(),
            (1000, 50)
        );
        assert_eq!(resolve_chown("1", Some("2"), &p, &g).unwrap(), (1, 2));
        assert!(resolve_chown("ghost", None, &p, &g).is_err());
    }
}
