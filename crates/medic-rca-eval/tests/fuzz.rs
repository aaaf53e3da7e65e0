//! No input panics the PetShop readers or the diagnosis behind `medic eval
//! rca`: arbitrary and mutated files are parsed or refused with the file
//! named; parsed data with any values (NaN, infinities, huge, negative,
//! gaps) is diagnosed or refused, and a ranking names only real services.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use medic_rca::{evidence_match, Params};
use medic_rca_eval::petshop::{self, Target};
use proptest::prelude::*;

const GRAPH: &str = ",web,api,db\nweb,0,1,0\napi,0,0,1\ndb,0,0,0\n";
const TARGET: &str = r#"{"target": {"node": "web", "metric": "latency", "agg": "Average", "timestamp": 1681350548}, "root_cause": {"node": "db"}}"#;

/// A metrics file of `rows` rows for web, api and db (latency and
/// availability, Average; requests, Sum) with the values `v` cycled.
fn metrics(rows: usize, v: &[f64]) -> String {
    let cols = [
        ("web", "latency", "Average"),
        ("api", "latency", "Average"),
        ("db", "latency", "Average"),
        ("web", "availability", "Average"),
        ("api", "availability", "Average"),
        ("db", "availability", "Average"),
        ("web", "requests", "Sum"),
        ("api", "requests", "Sum"),
        ("db", "requests", "Sum"),
    ];
    let head = |name: &str, part: usize| {
        let cells: Vec<&str> = cols.iter().map(|c| [c.0, c.1, c.2][part]).collect();
        format!("{name},{}\n", cells.join(","))
    };
    let mut s = head("microservice", 0) + &head("metric", 1) + &head("statistic", 2);
    let mut k = 0;
    for r in 0..rows {
        s += &format!("{}", 1_681_000_000 + 300 * r);
        for _ in &cols {
            let x = v.get(k % v.len().max(1)).copied().unwrap_or(1.0);
            k += 1;
            if x.is_nan() {
                s += ",";
            } else {
                s += &format!(",{x}");
            }
        }
        s += "\n";
    }
    s
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..200.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(0.0),
        1 => Just(1e308),
        1 => -1e6f64..0.0,
    ]
}

fn mutate(text: &str, edits: &[(usize, u8)]) -> String {
    let mut b = text.as_bytes().to_vec();
    for &(pos, byte) in edits {
        let i = pos % b.len();
        b[i] = byte;
    }
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_files_are_parsed_or_refused_with_the_file_named(s in "\\PC{0,300}") {
        for e in [
            petshop::parse_metrics("m.csv", &s).err(),
            petshop::parse_graph("g.csv", &s).err(),
            petshop::parse_target("t.json", &s).err(),
        ]
        .into_iter()
        .flatten()
        {
            let e = e.to_string();
            prop_assert!(e.starts_with("m.csv") || e.starts_with("g.csv") || e.starts_with("t.json") || e.contains("topology"), "{}", e);
        }
    }

    #[test]
    fn mutated_files_never_panic(edits in proptest::collection::vec((0usize..10_000, any::<u8>()), 1..5)) {
        let _ = petshop::parse_graph("g.csv", &mutate(GRAPH, &edits));
        let _ = petshop::parse_target("t.json", &mutate(TARGET, &edits));
        let _ = petshop::parse_metrics("m.csv", &mutate(&metrics(12, &[1.0, 2.0]), &edits));
    }

    #[test]
    fn any_values_are_diagnosed_or_refused(
        normal in proptest::collection::vec(value(), 1..60),
        abnormal in proptest::collection::vec(value(), 1..60),
        normal_rows in 0usize..40,
        abnormal_rows in 0usize..8,
        node in 0usize..3,
        availability in any::<bool>(),
        noticed in proptest::option::of(0u64..4000),
    ) {
        let topo = petshop::parse_graph("g.csv", GRAPH).unwrap();
        let n = petshop::parse_metrics("n.csv", &metrics(normal_rows, &normal)).unwrap();
        let a = petshop::parse_metrics("a.csv", &metrics(abnormal_rows, &abnormal)).unwrap();
        let target = Target {
            node: ["web", "api", "db"][node].to_string(),
            metric: if availability { "availability" } else { "latency" }.to_string(),
            agg: "Average".to_string(),
            root_cause: "db".to_string(),
            timestamp: None,
        };
        let noticed_at = noticed.map(|s| 1_681_000_000.0 + s as f64);
        let window = petshop::Window {
            topo: &topo,
            normal: &n,
            abnormal: &a,
            normal_rows: 0..n.rows,
            abnormal_rows: 0..a.rows,
            target: &target,
            noticed_at,
        };
        if let Ok(d) = petshop::diagnose_window(&window, &Params::default()) {
            for v in d.ranked_nodes() {
                prop_assert!(v < topo.len());
            }
            let e = evidence_match(&d);
            prop_assert!((0.0..=1.0).contains(&e), "{}", e);
        }
    }
}
