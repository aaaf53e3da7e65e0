#![allow(clippy::unwrap_used, clippy::expect_used)]
//! docs/governance.md's class table must say what `medic_core::CLASS_TABLE` says.
use medic_core::{ClassBudget, Undo, CLASS_TABLE};

#[test]
fn the_documented_class_table_is_the_code_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/governance.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc.find("<!-- class-table").expect("class table marker");
    let rows: Vec<Vec<String>> = doc[start..]
        .lines()
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect();
    let want: Vec<Vec<String>> = CLASS_TABLE
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                r.default_risk.as_str().to_string(),
                if r.removes_capacity { "yes" } else { "no" }.to_string(),
                match r.budget {
                    None => "-",
                    Some(ClassBudget::Restart) => "restart",
                    Some(ClassBudget::FeatureFlag) => "feature_flag",
                    Some(ClassBudget::Fallback) => "fallback",
                }
                .to_string(),
                match r.undo {
                    Undo::None => "-",
                    Undo::Inverse(u) => u,
                }
                .to_string(),
                r.verification.as_str().to_string(),
            ]
        })
        .collect();
    assert_eq!(rows, want);
}

/// docs/executors.md's action catalogue lists every class once, with the
/// undo and verification `CLASS_TABLE` declares.
#[test]
fn the_documented_catalogue_is_the_code_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/executors.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc.find("<!-- catalogue").expect("catalogue marker");
    let mut rows: Vec<Vec<String>> = doc[start..]
        .lines()
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect();
            vec![c[0].clone(), c[2].clone(), c[3].clone()]
        })
        .collect();
    rows.sort();
    let mut want: Vec<Vec<String>> = CLASS_TABLE
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                match r.undo {
                    Undo::None => "-".to_string(),
                    Undo::Inverse(u) => u.to_string(),
                },
                r.verification.as_str().to_string(),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(rows, want);
}
