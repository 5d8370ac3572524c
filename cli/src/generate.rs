//! `voicelake generate`: the workspace's synthetic traffic, written as CloudWatch Logs subscription
//! events.

use anyhow::{Context, Result};
use voicelake_shared::timefmt::{self, now_ms};
use voicelake_synth::{self as synth, SynthOptions};

use crate::args::GenerateArgs;

/// `voicelake generate`: synthetic traffic as subscription events, in a file.
pub fn run(args: GenerateArgs) -> Result<()> {
    let start_ms = match &args.start {
        Some(s) => timefmt::parse_event_time(s).with_context(|| format!("--start {s:?} is not an RFC 3339 time within 2000..2100"))?,
        // The traffic ends before now (an hour's margin for the last calls' length), however many
        // calls: never in the future, where the report and the alarms would see a clock error.
        None => ((now_ms() - synth::window_ms(args.calls)) / 3_600_000 - 1) * 3_600_000,
    };
    let opts = SynthOptions { calls: args.calls, seed: args.seed, start_ms, noise: !args.clean, outage: args.outage.clone() };
    let batches = synth::generate(&opts);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::File::create(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    synth::write_subscription_lines(&batches, &mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .with_context(|| format!("writing {}", args.out.display()))?;
    let events: usize = batches.iter().map(|b| b.log_events.len()).sum();
    eprintln!("wrote {} subscription events ({events} log events, {} calls) to {}", batches.len(), args.calls, args.out.display());
    Ok(())
}
