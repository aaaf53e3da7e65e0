//! `depends_on`: the service dependency graph (issue 9).
//!
//! Each service lists the services it calls, by name or as `{service, kind}`
//! (`sync`, the default, `queue` or `database`). An edge `A → B` means A calls
//! B, so a fault in B shows up in A: causes flow against the arrows. Unknown
//! names, a service depending on itself and cycles are errors with the
//! location of the offending entry.
use std::collections::BTreeMap;
use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// One `depends_on` entry as written.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDep {
    Name(String),
    Full(RawDepFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDepFull {
    pub service: String,
    pub kind: Option<String>,
}

/// How a service reaches its dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DepKind {
    /// A synchronous call (HTTP, RPC): latency and errors propagate at once.
    Sync,
    /// Through a queue: the caller sees backlog, not latency.
    Queue,
    /// A database.
    Database,
}

impl DepKind {
    pub const NAMES: [&'static str; 3] = ["sync", "queue", "database"];

    pub fn name(self) -> &'static str {
        match self {
            DepKind::Sync => "sync",
            DepKind::Queue => "queue",
            DepKind::Database => "database",
        }
    }

    fn parse(s: &str) -> Option<DepKind> {
        match s {
            "sync" => Some(DepKind::Sync),
            "queue" => Some(DepKind::Queue),
            "database" => Some(DepKind::Database),
            _ => None,
        }
    }
}

impl fmt::Display for DepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One edge of the dependency graph: `from` calls `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    pub from: String,
    pub to: String,
    pub kind: DepKind,
}

/// Validates every service's `depends_on` and returns the edges in a stable
/// order (by caller, then as written). Problems go to `at`.
pub(crate) fn validate(
    services: &BTreeMap<String, Vec<Spanned<RawDep>>>,
    mut at: impl FnMut(Location, String),
) -> Vec<Dependency> {
    let mut edges: Vec<(Dependency, Location)> = Vec::new();
    for (from, deps) in services {
        let mut seen: Vec<&str> = Vec::new();
        for d in deps {
            let (to, kind) = match &d.value {
                RawDep::Name(n) => (n.as_str(), None),
                RawDep::Full(f) => (f.service.as_str(), f.kind.as_deref()),
            };
            let kind = match kind {
                None => DepKind::Sync,
                Some(k) => match DepKind::parse(k) {
                    Some(k) => k,
                    None => {
                        at(
                            d.referenced,
                            format!(
                                "service {from}: depends_on `{to}`: unknown kind `{k}` (expected one of: {})",
                                DepKind::NAMES.join(", ")
                            ),
                        );
                        continue;
                    }
                },
            };
            if !services.contains_key(to) {
                at(
                    d.referenced,
                    format!("service {from}: depends_on names unknown service `{to}`"),
                );
                continue;
            }
            if to == from {
                at(
                    d.referenced,
                    format!("service {from}: depends_on names itself (a cycle)"),
                );
                continue;
            }
            if seen.contains(&to) {
                at(
                    d.referenced,
                    format!("service {from}: depends_on names `{to}` twice"),
                );
                continue;
            }
            seen.push(to);
            edges.push((
                Dependency {
                    from: from.clone(),
                    to: to.to_string(),
                    kind,
                },
                d.referenced,
            ));
        }
    }
    // Cycles: every strongly connected component with more than one service.
    let mut g: DiGraph<&str, Location> = DiGraph::new();
    let idx: BTreeMap<&str, NodeIndex> = services
        .keys()
        .map(|n| (n.as_str(), g.add_node(n.as_str())))
        .collect();
    for (e, loc) in &edges {
        if let (Some(&a), Some(&b)) = (idx.get(e.from.as_str()), idx.get(e.to.as_str())) {
            g.add_edge(a, b, *loc);
        }
    }
    for scc in petgraph::algo::tarjan_scc(&g) {
        if scc.len() < 2 {
            continue;
        }
        let mut names: Vec<&str> = scc.iter().map(|&n| g[n]).collect();
        names.sort_unstable();
        // Report at the first edge (in file order) inside the component.
        let loc = g
            .edge_indices()
            .filter_map(|e| {
                let (a, b) = g.edge_endpoints(e)?;
                (scc.contains(&a) && scc.contains(&b)).then(|| g[e])
            })
            .min_by_key(|l| (l.line(), l.column()));
        if let Some(loc) = loc {
            at(
                loc,
                format!(
                    "depends_on forms a cycle between services: {}",
                    names.join(", ")
                ),
            );
        }
    }
    let mut out: Vec<Dependency> = edges.into_iter().map(|(d, _)| d).collect();
    out.sort_by(|a, b| a.from.cmp(&b.from));
    out
}
