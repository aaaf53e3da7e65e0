//! The web console in a real browser: Debian's `chromium` driven headless by
//! `chromedriver` over WebDriver (fantoccini), against the real `medic`
//! binary, the real fixture and a real SQLite file, logged in with a token.
//!
//! It opens the console, sees a live incident appear (SSE, no reload) from a
//! real fault, approves the pending restart and sees it executed (a new
//! fixture process), switches the mode from the page, pauses all automation
//! from the page and sees the next fault not acted on.
//!
//! Fails (does not skip) when `CI` is set and chromium or chromedriver is
//! missing. Bounded: the whole browser part runs under a 150 s timeout.
//! chromedriver runs in its own process group and carries the test's tag;
//! both are killed at the end, and the test checks nothing tagged survives.
//!
//! With `MEDIC_SCREENSHOTS=DIR` it also writes PNGs of the main pages there
//! (how docs/screenshots/ was made).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};

const BOUND: Duration = Duration::from_secs(150);

/// chromedriver in a process group of its own; the group is killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, fport: u16, aport: u16) -> PathBuf {
    let exe = assert_cmd::cargo::cargo_bin("medic");
    write(
        dir,
        "medic.yaml",
        &format!(
            r#"mode: conservative
listen: 127.0.0.1:{aport}
database: medic.db
policy: {{ cooldown: 1s, verify_window: 2s }}
services:
  web:
    startup: {{ grace: 0s }}
    process:
      command: ["{exe}", "fixture", "--port", "{fport}"]
      stop_grace: 2s
    probes:
      healthz:
        http: {{ url: "http://127.0.0.1:{fport}/healthz", timeout: 1s }}
        interval: 250ms
        failure: {{ consecutive: 2 }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: healthz }}
        action: restart
"#,
            exe = exe.display()
        ),
    )
}

async fn post(url: &str) {
    let r = reqwest::Client::new().post(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

async fn shot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("MEDIC_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (bounded) until the text of `css` satisfies `ok`; returns it.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let end = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
            }
        }
        assert!(
            std::time::Instant::now() < end,
            "{css}: expected text not shown within 15s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_css(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(secs))
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {secs}s: {e}"))
}

fn count(api: &str, kind: &str) -> usize {
    let page = get_json(&format!("{api}/api/v1/audit?limit=1000")).unwrap();
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == kind)
        .count()
}

#[test]
fn console_shows_a_live_incident_approves_and_pauses_in_a_real_browser() {
    let Some(chromium) = require_binary(&["chromium", "chromium-browser"], "chromium") else {
        return;
    };
    let Some(chromedriver) = require_binary(&["chromedriver"], "chromium-driver") else {
        return;
    };
    let dir = TestDir::new();
    let (fport, aport, dport) = (free_port(), free_port(), free_port());
    let cfg = config(dir.path(), fport, aport);
    let daemon = dir.spawn_daemon(&cfg, None);
    let api = format!("http://127.0.0.1:{aport}");
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let first_pid = fixture_pid(&health);
    let token = token_as(&api, "alice", "admin");

    let driver = Driver(
        std::process::Command::new(&chromedriver)
            .arg(format!("--port={dport}"))
            .env(TAG_VAR, dir.tag())
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("chromedriver", Duration::from_secs(20), || {
        get_json(&format!("http://127.0.0.1:{dport}/status"))
            .filter(|v| v["value"]["ready"] == true)
    });
    let profile = dir.path().join("chromium-profile");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dport_s = dport;
    let run = async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1100",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{dport_s}"))
            .await
            .unwrap();
        scenario(&c, &api, &health, &token, first_pid).await;
        if std::env::var_os("MEDIC_SCREENSHOTS").is_some() {
            demo_screenshots(&c, &dir).await;
        }
        // Quit the browser.
        let _ = c.close().await;
    };
    rt.block_on(async {
        tokio::time::timeout(BOUND, run)
            .await
            .unwrap_or_else(|_| panic!("the browser test took over {BOUND:?}"))
    });
    drop(rt);
    drop(driver);
    drop(daemon);
    wait_for(
        "every tagged process to end",
        Duration::from_secs(10),
        || dir.tagged().is_empty().then_some(()),
    );
}

async fn scenario(c: &Client, api: &str, health: &str, token: &str, first_pid: u64) {
    // Not logged in: the console sends us to the login page.
    c.goto(&format!("{api}/ui/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    shot(c, "login").await;
    // A wrong token is refused.
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys("medic_nope")
        .await
        .unwrap();
    c.find(Locator::Css("#login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#flash", |t| t.contains("unknown or revoked")).await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Css("#login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#mode", |t| t == "conservative").await;
    assert!(text(c, ".who").await.contains("alice (admin)"));
    assert!(text(c, "#kill-state").await.contains("running"));
    assert!(text(c, "#audit").await.starts_with("chain ok"));
    assert!(c
        .find_all(Locator::Css("#incidents tr.incident"))
        .await
        .unwrap()
        .is_empty());

    // A real fault: the incident appears live (SSE), without a reload.
    post(&format!(
        "{}/fault/error",
        health.trim_end_matches("/healthz")
    ))
    .await;
    let row = wait_css(c, "#incidents tr.incident", 20).await;
    let incident = row.attr("data-id").await.unwrap().unwrap();
    // The restart is MEDIUM risk: conservative mode waits for a human.
    let approve = wait_for_reload(c, api, "button.approve", 20).await;
    shot(c, "console").await;
    approve.click().await.unwrap();
    wait_text(c, "#flash", |t| t.contains("granted")).await;
    // Executed: a new fixture process answers, and the list says healed.
    let pid = tokio::task::spawn_blocking({
        let health = health.to_string();
        move || new_fixture_pid(&health, first_pid, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_ne!(pid, first_pid);
    wait_css(
        c,
        &format!("#incidents tr.incident[data-id='{incident}'][data-state='resolved']"),
        20,
    )
    .await;
    c.goto(&format!("{api}/ui/incidents/{incident}"))
        .await
        .unwrap();
    wait_text(c, "#outcome", |t| t == "healed").await;
    let verdicts: Vec<String> = {
        let mut v = Vec::new();
        for e in c
            .find_all(Locator::Css(".decision .verdict"))
            .await
            .unwrap()
        {
            v.push(e.text().await.unwrap());
        }
        v
    };
    assert_eq!(verdicts, ["pending-approval", "run"], "{verdicts:?}");
    assert!(c.find(Locator::Css("svg.chart")).await.is_ok(), "no chart");
    shot(c, "incident").await;

    // Aggressive mode from the page: a restart would now run on its own...
    c.goto(&format!("{api}/ui/")).await.unwrap();
    c.find(Locator::Css("#mode-select option[value='aggressive']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("#set-mode"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#mode", |t| t == "aggressive").await;
    // ...but the kill switch holds everything.
    c.find(Locator::Css("#pause-reason"))
        .await
        .unwrap()
        .send_keys("browser test")
        .await
        .unwrap();
    c.find(Locator::Css("#pause-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#kill-state", |t| t == "ALL AUTOMATION PAUSED").await;
    shot(c, "paused").await;
    let intents = tokio::task::spawn_blocking({
        let api = api.to_string();
        move || count(&api, "action.intent")
    })
    .await
    .unwrap();
    post(&format!(
        "{}/fault/error",
        health.trim_end_matches("/healthz")
    ))
    .await;
    wait_css(
        c,
        &format!("#incidents tr.incident:not([data-id='{incident}'])"),
        20,
    )
    .await;
    // Well past detection (2 × 250 ms) and the 1 s cooldown: nothing ran.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (after, still) = tokio::task::spawn_blocking({
        let api = api.to_string();
        let health = health.to_string();
        move || {
            let base = health.trim_end_matches("/healthz").to_string();
            let m = get_text(&format!("{base}/metrics")).unwrap_or_default();
            (count(&api, "action.intent"), m)
        }
    })
    .await
    .unwrap();
    assert_eq!(after, intents, "medic acted while paused");
    assert!(!still.is_empty(), "the fixture was restarted or died");
    c.goto(&format!("{api}/ui/")).await.unwrap();
    assert!(c
        .find_all(Locator::Css("button.approve"))
        .await
        .unwrap()
        .is_empty());
}

/// Screenshots of the console over the demo's data: `medic demo --dir`, then
/// `medic run` on the demo's database (mode disabled, so nothing acts).
async fn demo_screenshots(c: &Client, dir: &TestDir) {
    let demo = dir.path().join("demo");
    let out = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("medic"))
        .args(["demo", "--dir"])
        .arg(&demo)
        .env(TAG_VAR, dir.tag())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "medic demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let text = std::fs::read_to_string(demo.join("medic.yaml"))
        .unwrap()
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
        .replace("mode: aggressive", "mode: disabled");
    let cfg = write(&demo, "view.yaml", &text);
    let _d = dir.spawn_daemon(&cfg, None);
    let api = format!("http://127.0.0.1:{port}");
    tokio::task::spawn_blocking({
        let api = api.clone();
        move || {
            wait_for("the demo's medic", Duration::from_secs(20), || {
                get_json(&format!("{api}/api/v1/incidents"))
            })
        }
    })
    .await
    .unwrap();
    c.goto(&format!("{api}/ui/")).await.unwrap();
    wait_css(c, "#incidents tr.incident", 10).await;
    shot(c, "demo-console").await;
    let id = c
        .find(Locator::Css(
            "#incidents tr.incident[data-state='manual_intervention']",
        ))
        .await
        .or(c.find(Locator::Css("#incidents tr.incident")).await)
        .unwrap()
        .attr("data-id")
        .await
        .unwrap()
        .unwrap();
    c.goto(&format!("{api}/ui/incidents/{id}")).await.unwrap();
    shot(c, "demo-incident").await;
}

/// Reloads the page until `css` appears (for parts not pushed live).
async fn wait_for_reload(
    c: &Client,
    api: &str,
    css: &str,
    secs: u64,
) -> fantoccini::elements::Element {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        assert!(
            std::time::Instant::now() < end,
            "{css} did not appear within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.goto(&format!("{api}/ui/")).await.unwrap();
    }
}
