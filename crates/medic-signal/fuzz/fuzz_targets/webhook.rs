//! Arbitrary bytes into the Alertmanager webhook parser and the alert mapper:
//! never a panic; every rejection names a field.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medic_signal::alertmanager::{alert_reports, parse_webhook};

fuzz_target!(|data: &[u8]| {
    match parse_webhook(data) {
        Ok(p) => {
            let cfg = medic_config::AlertmanagerConfig::default();
            let (reports, ignored) = alert_reports(&cfg, &p);
            assert_eq!(reports.len() + ignored, p.alerts.len());
        }
        Err(e) => assert!(!e.field().is_empty()),
    }
});
