// Shared by the targets (each target is its own crate, so it is included with `include!`).

const NOW: i64 = 1_795_442_400_000;

/// No panic (libFuzzer catches those), and the pipeline's invariants hold.
fn check(out: &voicelake_shared::BatchOutput) {
    if let Err(e) = voicelake_shared::invariants::check_invariants(out, &voicelake_shared::Config::default(), NOW) {
        panic!("invariant broken: {e}");
    }
}
