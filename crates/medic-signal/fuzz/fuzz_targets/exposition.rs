//! Arbitrary bytes into the exposition parser: it must never panic, and
//! whatever it accepts must render and parse back to the same samples.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medic_signal::expo;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(e) = expo::parse(&text) {
        let again = expo::parse(&expo::render(&e.samples)).expect("rendered samples parse");
        assert_eq!(again.samples.len(), e.samples.len());
        for (a, b) in e.samples.iter().zip(&again.samples) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.labels, b.labels);
            assert_eq!(a.timestamp_ms, b.timestamp_ms);
            assert!(a.value.to_bits() == b.value.to_bits() || (a.value.is_nan() && b.value.is_nan()));
        }
    }
});
