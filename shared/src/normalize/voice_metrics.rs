//! The application's `voice_metrics` event: one turn, its components nested (`eou`, `llm`, `tts`,
//! `stt`) or flat (`eou_delay`, `llm_ttft`, …), in seconds or `_ms`.
use super::{Issues, MAX_DURATION_MS, MAX_LATENCY_MS, Observation, Origin, any_present, first_present, identity, owned, turn_base, within};
use crate::config::Config;
use crate::event::{EouBlock, ModelBlock, RawEvent};
use crate::reasons::RejectReason;
use crate::rows::SourceFormat;

pub(super) fn observe(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
    let mut issues = Issues::default();
    issues.object("eou", &raw.eou);
    issues.block("llm", &raw.llm);
    issues.block("tts", &raw.tts);
    issues.block("stt", &raw.stt);
    let none = ModelBlock::default();
    let eou_none = EouBlock::default();
    let eou = raw.eou.get().map(Box::as_ref).unwrap_or(&eou_none);
    let llm = raw.llm.get().map(Box::as_ref).unwrap_or(&none);
    let tts = raw.tts.get().map(Box::as_ref).unwrap_or(&none);
    let stt = raw.stt.get().map(Box::as_ref).unwrap_or(&none);

    let eou_delay = first_present(&[
        ("eou.end_of_utterance_delay", eou.end_of_utterance_delay, eou.end_of_utterance_delay_ms),
        ("eou.delay", eou.delay, eou.delay_ms),
        ("eou_delay", raw.eou_delay, raw.eou_delay_ms),
        ("end_of_utterance_delay", raw.end_of_utterance_delay, raw.end_of_utterance_delay_ms),
    ]);
    let transcription = first_present(&[
        ("eou.transcription_delay", eou.transcription_delay, eou.transcription_delay_ms),
        ("transcription_delay", raw.transcription_delay, raw.transcription_delay_ms),
    ]);
    let hook = first_present(&[
        ("eou.on_user_turn_completed_delay", eou.on_user_turn_completed_delay, eou.on_user_turn_completed_delay_ms),
        ("on_user_turn_completed_delay", raw.on_user_turn_completed_delay, raw.on_user_turn_completed_delay_ms),
    ]);
    let ttft = first_present(&[("llm.ttft", llm.ttft, llm.ttft_ms), ("llm_ttft", raw.llm_ttft, raw.llm_ttft_ms)]);
    let ttfb = first_present(&[("tts.ttfb", tts.ttfb, tts.ttfb_ms), ("tts_ttfb", raw.tts_ttfb, raw.tts_ttfb_ms)]);
    let total = first_present(&[("total_latency", raw.total_latency, raw.total_latency_ms)]);

    let measured = [
        eou_delay.1,
        eou_delay.2,
        transcription.1,
        transcription.2,
        hook.1,
        hook.2,
        ttft.1,
        ttft.2,
        ttfb.1,
        ttfb.2,
        total.1,
        total.2,
        llm.duration,
        llm.duration_ms,
        llm.prompt_tokens,
        llm.completion_tokens,
        tts.duration,
        tts.duration_ms,
        tts.audio_duration,
        tts.characters_count,
        stt.duration,
        stt.duration_ms,
        stt.audio_duration,
    ];
    if !any_present(&measured) {
        return Observation::Reject {
            reason: RejectReason::NoMeasurements,
            detail: "voice_metrics without total_latency, eou, llm, tts or stt values".into(),
        };
    }
    let id = match identity(raw, None, origin, &mut issues) {
        Ok(id) => id,
        Err(reject) => return reject.into(),
    };
    let mut row = turn_base(id, origin, config, SourceFormat::AppVoiceMetrics);
    row.speech_id = owned(issues.text("speech_id", &raw.speech_id));
    row.eou_delay_ms = issues.millis(eou_delay.0, eou_delay.1, eou_delay.2, true, MAX_LATENCY_MS);
    row.transcription_delay_ms = issues.millis(transcription.0, transcription.1, transcription.2, true, MAX_LATENCY_MS);
    within(&mut issues, transcription.0, &mut row.transcription_delay_ms, "end-of-utterance delay", row.eou_delay_ms);
    row.on_user_turn_completed_delay_ms = issues.latency(hook.0, hook.1, hook.2);
    row.llm_ttft_ms = issues.latency(ttft.0, ttft.1, ttft.2);
    row.llm_duration_ms = issues.millis("llm.duration", llm.duration, llm.duration_ms, false, MAX_DURATION_MS);
    row.prompt_tokens = issues.count("llm.prompt_tokens", llm.prompt_tokens);
    row.prompt_cached_tokens = issues.count("llm.prompt_cached_tokens", llm.prompt_cached_tokens);
    row.completion_tokens = issues.count("llm.completion_tokens", llm.completion_tokens);
    row.llm_model = owned(issues.text("llm.model", &llm.model));
    row.llm_provider = owned(issues.text("llm.provider", &llm.provider));
    row.tts_ttfb_ms = issues.latency(ttfb.0, ttfb.1, ttfb.2);
    row.tts_duration_ms = issues.millis("tts.duration", tts.duration, tts.duration_ms, false, MAX_DURATION_MS);
    row.tts_audio_duration_ms = issues.millis("tts.audio_duration", tts.audio_duration, tts.audio_duration_ms, false, MAX_DURATION_MS);
    row.tts_characters = issues.count("tts.characters_count", tts.characters_count);
    row.tts_model = owned(issues.text("tts.model", &tts.model));
    row.tts_provider = owned(issues.text("tts.provider", &tts.provider));
    row.stt_duration_ms = issues.millis("stt.duration", stt.duration, stt.duration_ms, false, MAX_DURATION_MS);
    row.stt_audio_duration_ms = issues.millis("stt.audio_duration", stt.audio_duration, stt.audio_duration_ms, false, MAX_DURATION_MS);
    row.stt_model = owned(issues.text("stt.model", &stt.model));
    row.stt_provider = owned(issues.text("stt.provider", &stt.provider));
    let reported_ms = issues.latency(total.0, total.1, total.2);
    row.value_issues = issues.finish();
    Observation::Turn { row, reported_ms }
}
