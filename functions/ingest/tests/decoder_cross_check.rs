//! Our subscription decoder against the Lambda runtime's own event crate (`aws_lambda_events`):
//! each decodes what the other encodes, to the same batch.

use voicelake_shared::envelope;
use voicelake_synth::{self as synth, SynthOptions};

/// The event crate of the Lambda runtime decodes the same payloads to the same batch.
#[test]
fn the_decoder_agrees_with_aws_lambda_events() {
    use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
    for b in synth::generate(&SynthOptions { calls: 8, ..SynthOptions::default() }) {
        let ours = serde_json::to_string(&envelope::subscription_event(&b)).unwrap();
        let theirs: LogsEvent = serde_json::from_str(&ours).expect("the event crate decodes our encoding");
        let back = serde_json::to_string(&theirs).unwrap();
        let event: envelope::SubscriptionEvent = serde_json::from_str(&back).unwrap();
        let decoded = envelope::decode(&event.awslogs.data).expect("we decode the event crate's encoding").batch;
        assert_eq!(decoded.log_events.len(), theirs.aws_logs.data.log_events.len());
        for (a, e) in decoded.log_events.iter().zip(&theirs.aws_logs.data.log_events) {
            assert_eq!((&a.id, a.timestamp, &a.message), (&e.id, e.timestamp, &e.message));
        }
        assert_eq!(decoded, b);
    }
}
