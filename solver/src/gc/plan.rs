//! Deciding what a prune removes: which records go, then which store entries nothing kept
//! references.

use std::collections::HashSet;

use super::scan::{Entry, Inventory, Rule};
use super::PruneOptions;
use crate::index::GcRecord;
use crate::lease::LiveLeases;

/// Things changed this close before a live lease's start still count as the build's own
/// (file-system timestamps may lag the clock by a tick).
const LEASE_SLACK_NS: i64 = 2_000_000_000;
/// Temp files untouched this long belong to nobody (a writer updates them as it goes).
pub(crate) const TEMP_GRACE_NS: i64 = 10 * 60 * 1_000_000_000;

/// What a prune removes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Records to delete.
    pub(crate) keys: Vec<String>,
    /// Indexes into the inventory's entries.
    pub(crate) victims: Vec<usize>,
}

/// Inputs of a plan besides the inventory.
pub(crate) struct Context<'a> {
    pub(crate) records: &'a [GcRecord],
    pub(crate) leases: &'a LiveLeases,
    pub(crate) opts: &'a PruneOptions,
    pub(crate) now_ns: i64,
}

impl Context<'_> {
    /// Nothing changed after this (unix ns) is removed (`--filter until=`).
    fn until_cutoff(&self) -> Option<i64> {
        self.opts.until.map(|d| {
            self.now_ns
                .saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        })
    }

    fn record_eligible(&self, r: &GcRecord, locked: &dyn Fn(&str) -> bool) -> bool {
        self.until_cutoff().is_none_or(|c| r.last_used <= c) && !locked(&r.key)
    }
}

/// The plan: records chosen by `--all` / `--keep-storage` (least recently used first), then
/// every entry that nothing left references. `locked(key)` tells a record being computed.
pub(crate) fn plan(inv: &Inventory, cx: &Context<'_>, locked: &dyn Fn(&str) -> bool) -> Plan {
    let eligible: Vec<usize> = (0..cx.records.len())
        .filter(|&i| cx.record_eligible(&cx.records[i], locked))
        .collect();
    let count = match cx.opts.keep_storage {
        Some(limit) => {
            // Freed space only grows with the number of records deleted: binary search the
            // fewest least-recently-used ones that get the store under the limit.
            let total = inv.total();
            let after = |k: usize| -> u64 {
                let victims = victims(inv, cx, &eligible[..k]);
                total - victims.iter().map(|&i| inv.entries[i].size).sum::<u64>()
            };
            let (mut lo, mut hi) = (0, eligible.len());
            if after(hi) > limit {
                lo = hi;
            }
            while lo < hi {
                let mid = (lo + hi) / 2;
                if after(mid) <= limit {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        }
        None if cx.opts.all => eligible.len(),
        None => 0,
    };
    let chosen = &eligible[..count];
    Plan {
        keys: chosen.iter().map(|&i| cx.records[i].key.clone()).collect(),
        victims: victims(inv, cx, chosen),
    }
}

/// Entries removable once the records at `deleted` (indexes) are gone.
pub(crate) fn victims(inv: &Inventory, cx: &Context<'_>, deleted: &[usize]) -> Vec<usize> {
    let deleted: HashSet<usize> = deleted.iter().copied().collect();
    let mut blobs: HashSet<&str> = cx.leases.blobs.iter().map(String::as_str).collect();
    let mut diffs: HashSet<&str> = cx.leases.diff_ids.iter().map(String::as_str).collect();
    for (i, r) in cx.records.iter().enumerate() {
        if deleted.contains(&i) {
            continue;
        }
        for l in &r.layers {
            blobs.insert(l.blob.hex());
            diffs.insert(l.diff_id.hex());
        }
    }
    // A kept conversion keeps its converted blob.
    for e in &inv.entries {
        if let Rule::Conversion {
            diff,
            target: Some(t),
        } = &e.rule
        {
            if diffs.contains(diff.as_str()) {
                blobs.insert(t);
            }
        }
    }
    let snapshots: HashSet<&str> = diffs.iter().filter_map(|d| d.get(..12)).collect();
    let until = cx.until_cutoff();
    let recent = |e: &Entry| {
        let leased = cx
            .leases
            .oldest_start
            .is_some_and(|s| e.changed_ns >= s.saturating_sub(LEASE_SLACK_NS));
        leased || until.is_some_and(|c| e.changed_ns > c)
    };
    let mut out = Vec::new();
    for (i, e) in inv.entries.iter().enumerate() {
        let remove = match &e.rule {
            Rule::Keep => false,
            Rule::Always => true,
            Rule::Blob(hex) => !blobs.contains(hex.as_str()) && !recent(e),
            Rule::Snapshot(name) => !snapshots.contains(name.as_str()) && !recent(e),
            Rule::Conversion { diff, .. } => !diffs.contains(diff.as_str()) && !recent(e),
            Rule::Download(rel) => {
                let prefix = format!("{rel}/");
                let used = cx
                    .leases
                    .paths
                    .iter()
                    .any(|p| p == rel || p.starts_with(&prefix));
                !used && !recent(e)
            }
            Rule::Temp => e.mtime_ns < cx.now_ns.saturating_sub(TEMP_GRACE_NS),
            Rule::CacheMount { .. } => cx.opts.all && until.is_none_or(|c| e.changed_ns <= c),
        };
        if remove {
            out.push(i);
        }
    }
    out
}
