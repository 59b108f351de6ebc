//! Every case of the smuggling corpus through the codec: its decision (refuse, with which
//! status, or accept, with which framing and decoded body, request by request) is the one the
//! case states for today's data plane.

use crate::cases::{End, codec, corpus};

#[test]
fn the_codec_decides_every_corpus_case_as_the_case_says() {
    let mut failures = Vec::new();
    let cases = corpus();
    for case in &cases {
        let (got, reason) = codec(&case.request());
        let want = case.expected();
        if got != want {
            failures.push(format!(
                "case {} ({}):\n  codec: {got:?} (reason {reason:?})\n  case:  {want:?}",
                case.name, case.rfc
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_corpus_has_both_refusals_and_pipelines() {
    // A corpus that lost its refusals or its pipelines would pass the test above trivially.
    let cases = corpus();
    let refused = cases
        .iter()
        .filter(|case| matches!(case.expected().end, End::Refused(_)))
        .count();
    let pipelined = cases
        .iter()
        .filter(|case| case.expected().messages.len() > 1)
        .count();
    assert!(refused >= 20, "{refused} refusals");
    assert!(pipelined >= 3, "{pipelined} pipelines");
}
