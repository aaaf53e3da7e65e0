//! Staged canaries at the edge (issue 10): sample the canary and baseline
//! instances of a judge window (`Command::CollectCanary`) and hand the
//! samples back to the engine (`Input::CanarySamples`), which judges them.
//!
//! Every `interval` during the window each instance's `url` gets one GET
//! (all instances at once, each bounded by `timeout`): a 2xx answer gives a
//! latency sample (ms) and an error sample 0; anything else (status, refused,
//! timeout) gives an error sample 1 and no latency sample. Sampling never
//! blocks the engine loop: it runs in its own task and answers through the
//! loop's bounded input queue.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use medic_config::CanaryConfig;
use medic_core::medic_canary::MetricSamples;
use medic_core::{CanaryPlan, CanarySamples, CanaryWindow};
use tokio::sync::mpsc;

use crate::daemon::Msg;

/// Most samples kept per instance and metric in one window (a bound on
/// memory whatever `window / interval` is).
const MAX_SAMPLES_PER_INSTANCE: usize = 4096;

/// One sample of one instance: latency in ms when it answered 2xx.
async fn sample(http: &reqwest::Client, url: &str, timeout: Duration) -> Option<f64> {
    let t0 = Instant::now();
    let r = http.get(url).timeout(timeout).send().await.ok()?;
    let ok = r.status().is_success();
    // Read the body so the latency covers the whole answer.
    let _ = r.bytes().await.ok()?;
    ok.then(|| t0.elapsed().as_secs_f64() * 1000.0)
}

/// Sample `w` and send the samples to the engine loop.
pub(crate) fn collect(
    http: reqwest::Client,
    cfg: Option<CanaryConfig>,
    w: CanaryWindow,
    tx: mpsc::Sender<Msg>,
) {
    tokio::spawn(async move {
        let samples = match cfg {
            Some(cfg) => window(&http, &cfg, &w).await,
            // No instances to sample: the engine judges "no canary data".
            None => CanarySamples {
                service: w.service.clone(),
                stage: w.stage,
                metrics: Vec::new(),
            },
        };
        let _ = tx.send(Msg::Canary(samples)).await;
    });
}

async fn window(http: &reqwest::Client, cfg: &CanaryConfig, w: &CanaryWindow) -> CanarySamples {
    let mut latency: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let targets: Vec<(&str, &str)> = w
        .canary
        .iter()
        .chain(w.baseline.iter())
        .filter_map(|n| cfg.url(n).map(|u| (n.as_str(), u)))
        .collect();
    let end = tokio::time::Instant::now() + w.window;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if tokio::time::Instant::now() >= end {
            break;
        }
        let round = futures_join(http, &targets, cfg.timeout).await;
        for (name, s) in round {
            let e = errors.entry(name).or_default();
            if e.len() < MAX_SAMPLES_PER_INSTANCE {
                e.push(if s.is_some() { 0.0 } else { 1.0 });
            }
            if let Some(ms) = s {
                let l = latency.entry(name).or_default();
                if l.len() < MAX_SAMPLES_PER_INSTANCE {
                    l.push(ms);
                }
            }
        }
    }
    let pool = |m: &BTreeMap<&str, Vec<f64>>, names: &[String]| -> Vec<f64> {
        names
            .iter()
            .filter_map(|n| m.get(n.as_str()))
            .flatten()
            .copied()
            .collect()
    };
    CanarySamples {
        service: w.service.clone(),
        stage: w.stage,
        metrics: vec![
            MetricSamples {
                metric: CanaryPlan::LATENCY.into(),
                canary: pool(&latency, &w.canary),
                baseline: pool(&latency, &w.baseline),
            },
            MetricSamples {
                metric: CanaryPlan::ERRORS.into(),
                canary: pool(&errors, &w.canary),
                baseline: pool(&errors, &w.baseline),
            },
        ],
    }
}

/// One sample of every target, concurrently.
async fn futures_join<'a>(
    http: &reqwest::Client,
    targets: &[(&'a str, &str)],
    timeout: Duration,
) -> Vec<(&'a str, Option<f64>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (_, url)) in targets.iter().enumerate() {
        let http = http.clone();
        let url = url.to_string();
        set.spawn(async move { (i, sample(&http, &url, timeout).await) });
    }
    let mut out: Vec<(&'a str, Option<f64>)> = targets.iter().map(|(n, _)| (*n, None)).collect();
    while let Some(r) = set.join_next().await {
        if let Ok((i, s)) = r {
            if let Some(slot) = out.get_mut(i) {
                slot.1 = s;
            }
        }
    }
    out
}
