//! Issue 9 through the real binary: `medic graph`, `medic check` on `depends_on`,
//! `medic eval rca` on the vendored PetShop data and on generated scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use assert_cmd::Command;

fn medic() -> Command {
    Command::cargo_bin("medic").unwrap()
}

fn chain_config(dir: &std::path::Path, db_deps: &str) -> PathBuf {
    let svc = |name: &str, deps: &str| {
        format!("  {name}:\n    probes:\n      hz:\n        http: {{ url: http://127.0.0.1:1/healthz }}\n{deps}")
    };
    let text = format!(
        "services:\n{}{}{}",
        svc("web", "    depends_on: [api]\n"),
        svc(
            "api",
            "    depends_on:\n      - { service: db, kind: database }\n"
        ),
        svc("db", db_deps)
    );
    let p = dir.join("medic.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn graph_prints_text_and_dot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = chain_config(dir.path(), "");
    let out = medic().args(["graph", "-c"]).arg(&cfg).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        "api -> db (database)    [called by web]\ndb    [called by api]\nweb -> api (sync)\n"
    );
    let out = medic()
        .args(["graph", "--dot", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.starts_with("digraph medic {"), "{dot}");
    assert!(
        dot.contains("\"api\" -> \"db\" [label=\"database\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("\"web\" -> \"api\" [label=\"sync\"];"),
        "{dot}"
    );
}

#[test]
fn check_rejects_a_cycle_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = chain_config(dir.path(), "    depends_on: [web]\n");
    let out = medic().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let want = format!(
        "{}:6:18: depends_on forms a cycle between services: api, db, web",
        cfg.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("error[E0001]"), "{err}");
}

#[test]
fn patterns_list_and_show_with_operator_files() {
    let out = medic().args(["patterns", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["crash", "dependency_slow", "certificate_expiry", "overload"] {
        assert!(text.contains(name), "{text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = chain_config(dir.path(), "");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("patterns: [mine.yaml]\n");
    std::fs::write(&cfg, &text).unwrap();
    std::fs::write(
        dir.path().join("mine.yaml"),
        "patterns:\n  - name: gc_pause\n    cause: long GC pauses\n    symptoms: [{ signal: gc_ms, on: self, within: 5m }]\n    actions: [{ action: restart, tier: medium }]\n    prior: 0.4\n",
    )
    .unwrap();
    let out = medic()
        .args(["patterns", "show", "gc_pause", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let show = String::from_utf8(out.stdout).unwrap();
    assert!(
        show.contains("prior: 0.40") && show.contains("gc_ms on self, within 5m"),
        "{show}"
    );
    assert!(show.contains("restart (medium tier)"), "{show}");
    let out = medic().args(["patterns", "show", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("error[E0061]"));
    // A bad operator file fails `medic check` with its location.
    std::fs::write(
        dir.path().join("mine.yaml"),
        "patterns:\n  - name: x\n    prior: 2\n",
    )
    .unwrap();
    let out = medic().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("mine.yaml:3:5: missing field `cause`"),
        "{err}"
    );
}

#[test]
fn candidate_patterns_are_listed_and_only_a_human_accepts_or_rejects_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("medic.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let s = medic_store::Store::open(&db).await.unwrap();
        let id = s
            .add_candidate_pattern(&medic_store::CandidatePattern {
                id: 0,
                incident: "inc-1".into(),
                service: "api".into(),
                trigger: "work slow".into(),
                action: "flush".into(),
                by: "alice".into(),
                note: "cache was stale".into(),
                status: "candidate".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
            })
            .await
            .unwrap();
        s.record_pattern_outcome("dependency_slow", "restart", true)
            .await
            .unwrap();
        s.close().await;
        id
    });
    let list = || {
        let out = medic()
            .args(["patterns", "candidates", "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = list();
    assert!(text.contains(&format!("{id:<4} candidate  api")), "{text}");
    assert!(
        text.contains("flush") && text.contains("cache was stale"),
        "{text}"
    );
    assert!(text.contains("dependency_slow restart: 1 / 0"), "{text}");
    let out = medic()
        .args(["patterns", "accept", &id.to_string(), "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(list().contains(&format!("{id:<4} accepted ")));
    let out = medic()
        .args(["patterns", "reject", &id.to_string(), "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(list().contains(&format!("{id:<4} rejected ")));
    let out = medic()
        .args(["patterns", "accept", "999", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("error[E0062]"));
}

#[test]
fn patterns_list_and_show_include_the_accepted_candidates_of_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("medic.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cand = |service: &str, note: &str| medic_store::CandidatePattern {
        id: 0,
        incident: format!("inc-{service}"),
        service: service.into(),
        trigger: "work slow".into(),
        action: "flush_cache".into(),
        by: "alice".into(),
        note: note.into(),
        status: "candidate".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    let (accepted, pending, rejected) = rt.block_on(async {
        let s = medic_store::Store::open(&db).await.unwrap();
        let a = s
            .add_candidate_pattern(&cand("api", "cache went cold"))
            .await
            .unwrap();
        let p = s
            .add_candidate_pattern(&cand("web", "pending one"))
            .await
            .unwrap();
        let r = s
            .add_candidate_pattern(&cand("db", "rejected one"))
            .await
            .unwrap();
        assert!(s.set_candidate_status(a, "accepted").await.unwrap());
        assert!(s.set_candidate_status(r, "rejected").await.unwrap());
        s.close().await;
        (a, p, r)
    });
    let run = |args: &[&str]| {
        let out = medic().args(args).arg(&db).output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, list, err) = run(&["patterns", "list", "--db"]);
    assert_eq!(code, Some(0), "{err}");
    // The library, plus the accepted candidate marked as learned, with its
    // service scope and source; not the pending or rejected ones.
    assert!(
        list.contains("dependency_slow") && list.contains("crash"),
        "{list}"
    );
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("candidate-{accepted} ")))
        .unwrap_or_else(|| panic!("no accepted candidate in:\n{list}"));
    assert!(
        line.contains(&format!("candidate #{accepted} (accepted)")),
        "{line}"
    );
    assert!(
        line.contains("learned:api") && line.contains("cache went cold"),
        "{line}"
    );
    for other in [pending, rejected] {
        assert!(!list.contains(&format!("candidate-{other}")), "{list}");
    }
    assert!(list
        .lines()
        .filter(|l| l.starts_with("dependency_slow "))
        .all(|l| l.contains(" all ")));
    let (code, show, err) = run(&["patterns", "show", &format!("candidate-{accepted}"), "--db"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(show.contains("scope: learned:api"), "{show}");
    assert!(show.contains("latency on self"), "{show}");
    assert!(show.contains("flush_cache (medium tier)"), "{show}");
    let (code, _, err) = run(&["patterns", "show", &format!("candidate-{pending}"), "--db"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("error[E0061]"), "{err}");
    // Without a store: the library only.
    let out = medic().args(["patterns", "list"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("candidate-"), "{text}");
}
