//! Staged canaries at the edge (issue 10): sample the canary and baseline
//! instances of a judge window (`Command::CollectCanary`) and hand the
//! samples back to the engine (`Input::CanarySamples`), which judges them.
//!
//! Every `interval` during the window each instance's `url` gets one GET
//! (every instance on the same fixed schedule, requests to a slow instance
//! overlap, each bounded by `timeout`): a 2xx answer gives a latency sample
//! (ms) and an error sample 0; anything else (status, refused, timeout)
//! gives an error sample 1 and no latency sample. A request still running
//! when the window ends is dropped. Sampling never
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

/// Most sample requests in flight to one instance.
const MAX_IN_FLIGHT: usize = 16;

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
    let end = tokio::time::Instant::now() + w.window;
    // Each instance on its own schedule, so a slow canary does not thin out
    // the baseline's samples (or the other way round).
    let mut set = tokio::task::JoinSet::new();
    for name in w.canary.iter().chain(w.baseline.iter()) {
        let Some(url) = cfg.url(name) else {
            continue;
        };
        let (http, url, name) = (http.clone(), url.to_string(), name.clone());
        let (interval, timeout) = (cfg.interval, cfg.timeout);
        set.spawn(async move {
            // A fixed schedule (start + k·interval): a slow instance is
            // sampled as often as a fast one, its requests overlap (at most
            // MAX_IN_FLIGHT at once).
            let mut inflight = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut started = 0;
            loop {
                tick.tick().await;
                if tokio::time::Instant::now() >= end || started >= MAX_SAMPLES_PER_INSTANCE {
                    break;
                }
                if inflight.len() >= MAX_IN_FLIGHT {
                    continue;
                }
                started += 1;
                let (http, url) = (http.clone(), url.clone());
                // Still running at the end of the window: dropped (it would
                // bias the slower group towards errors).
                inflight.spawn(async move {
                    tokio::time::timeout_at(end, sample(&http, &url, timeout)).await
                });
            }
            let mut latency = Vec::new();
            let mut errors = Vec::new();
            while let Some(r) = inflight.join_next().await {
                if let Ok(Ok(s)) = r {
                    errors.push(if s.is_some() { 0.0 } else { 1.0 });
                    if let Some(ms) = s {
                        latency.push(ms);
                    }
                }
            }
            (name, latency, errors)
        });
    }
    let mut latency: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        if let Ok((name, l, e)) = r {
            latency.insert(name.clone(), l);
            errors.insert(name, e);
        }
    }
    let pool = |m: &BTreeMap<String, Vec<f64>>, names: &[String]| -> Vec<f64> {
        names
            .iter()
            .filter_map(|n| m.get(n))
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
