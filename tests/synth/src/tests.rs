use super::*;

#[test]
fn a_batch_of_a_given_size() {
    let b = batch_of_size(1 << 20, 1);
    let json = serde_json::to_vec(&b).unwrap().len();
    assert!((1 << 20..(1 << 20) + 4096).contains(&json), "{json}");
}

#[test]
fn the_same_seed_gives_the_same_traffic() {
    let opts = SynthOptions { calls: 20, ..SynthOptions::default() };
    assert_eq!(generate(&opts), generate(&opts));
    assert_ne!(generate(&opts), generate(&SynthOptions { seed: 8, ..opts.clone() }));
}

#[test]
fn batches_hold_one_stream_each_and_cover_every_agent() {
    let batches = generate(&SynthOptions { calls: 60, ..SynthOptions::default() });
    assert_eq!(batches[0].message_type, MessageType::ControlMessage);
    for b in &batches[1..] {
        assert!(!b.log_events.is_empty() && b.log_events.len() <= 64);
        assert!(b.log_stream.starts_with(b.log_group.trim_start_matches("/ecs/")));
    }
    for agent in AGENTS {
        assert!(batches.iter().any(|b| b.log_group == agent.log_group()), "{agent:?}");
    }
    let ids: std::collections::HashSet<&str> = batches.iter().flat_map(|b| b.log_events.iter().map(|e| e.id.as_str())).collect();
    assert_eq!(ids.len(), batches.iter().map(|b| b.log_events.len()).sum::<usize>(), "event ids are unique");
}
