//! The conformance suite against the in-memory `fake://` driver: every case
//! must pass (the fake has every capability).

om_driver_api::conformance_tests!(Some("fake:///conformance".to_owned()));

/// The programmatic API: every case listed, all applicable and passing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_on_a_separate_vhost() {
    use om_driver_api::testkit::{cases, run_all, Outcome};
    let results = run_all("fake:///conformance-run-all").await;
    assert_eq!(results.len(), cases().len());
    assert!(cases().len() >= 30, "only {} cases", cases().len());
    for (name, r) in results {
        assert_eq!(r, Ok(Outcome::Passed), "case {name}");
    }
}

#[test]
fn case_names_are_unique_identifiers() {
    let mut names: Vec<&str> = om_driver_api::testkit::cases()
        .iter()
        .map(|c| c.name)
        .collect();
    assert!(names.iter().all(|n| n
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
    let before = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), before);
}
