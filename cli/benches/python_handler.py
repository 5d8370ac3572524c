"""The baseline `voicelake replay` is measured against: the subscription handler a team would write in
Python with plain `json` and `pyarrow`, doing less than voicelake does (no turn assembly, no
validation, no personal-data scrubbing, no metrics).

For each subscription event of FILE (one JSON object per line): decode and inflate the payload,
parse the batch, find each message's JSON object, turn the contract's events into rows, and encode
the turns and sessions as Parquet (Snappy) each time 25,000 rows are pending, as `voicelake replay`
does. Prints one JSON
object: the seconds the handling took (the interpreter's start and imports excluded), the payloads,
log events, bytes of log messages and rows.

    python python_handler.py FILE
"""

import base64
import gzip
import io
import json
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

FLUSH_ROWS = 25_000

COMPONENT_FIELDS = {
    "eou_metrics": {"end_of_utterance_delay": "eou_delay_ms", "transcription_delay": "transcription_delay_ms"},
    "llm_metrics": {"ttft": "llm_ttft_ms", "duration": "llm_duration_ms"},
    "tts_metrics": {"ttfb": "tts_ttfb_ms", "duration": "tts_duration_ms"},
    "stt_metrics": {"duration": "stt_duration_ms"},
}


def message_json(message):
    """The JSON object in a log message: the whole message, or what follows a text prefix."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        value = json.loads(message[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def seconds_to_ms(value):
    return value * 1000.0 if isinstance(value, (int, float)) else None


def rows_of(batch):
    turns, sessions = [], []
    for event in batch.get("logEvents", []):
        body = message_json(event.get("message", ""))
        if body is None:
            continue
        body = body.get("analytics_data", body)
        kind = body.get("_event_type")
        if kind == "voice_metrics":
            eou, llm, tts = body.get("eou") or {}, body.get("llm") or {}, body.get("tts") or {}
            turns.append({
                "event_id": event.get("id"),
                "event_time": event.get("timestamp"),
                "session_id": body.get("_session_id"),
                "agent_name": body.get("agent_name"),
                "total_latency_ms": body.get("total_latency_ms"),
                "eou_delay_ms": seconds_to_ms(eou.get("end_of_utterance_delay")),
                "transcription_delay_ms": seconds_to_ms(eou.get("transcription_delay")),
                "llm_ttft_ms": seconds_to_ms(llm.get("ttft")),
                "llm_duration_ms": seconds_to_ms(llm.get("duration")),
                "tts_ttfb_ms": seconds_to_ms(tts.get("ttfb")),
                "tts_duration_ms": seconds_to_ms(tts.get("duration")),
                "prompt_tokens": llm.get("prompt_tokens"),
                "completion_tokens": llm.get("completion_tokens"),
                "llm_model": llm.get("model"),
            })
        elif kind == "session_analytics":
            sessions.append({
                "event_id": event.get("id"),
                "event_time": event.get("timestamp"),
                "session_id": body.get("_session_id"),
                "agent_name": body.get("agent_name"),
                "duration_seconds": body.get("duration_seconds"),
                "outcome": body.get("outcome"),
            })
        elif body.get("message") == "metrics_collected" or body.get("type") == "metrics_collected":
            metrics = body.get("metrics") or {}
            row = {"event_id": event.get("id"), "event_time": event.get("timestamp"), "session_id": body.get("room")}
            for field, column in COMPONENT_FIELDS.get(metrics.get("type"), {}).items():
                row[column] = seconds_to_ms(metrics.get(field))
            turns.append(row)
        elif body.get("type") == "session_usage_updated":
            sessions.append({"event_id": event.get("id"), "event_time": event.get("timestamp"), "session_id": body.get("room")})
    return turns, sessions


def write_parquet(rows):
    if not rows:
        return 0
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out, compression="snappy")
    return len(out.getvalue())


def main(path):
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    started = time.perf_counter()
    payloads = events = message_bytes = rows = parquet_bytes = 0
    pending_turns, pending_sessions = [], []
    for line in lines:
        data = json.loads(line)["awslogs"]["data"]
        batch = json.loads(gzip.decompress(base64.b64decode(data)))
        payloads += 1
        if batch.get("messageType") == "CONTROL_MESSAGE":
            continue
        for event in batch.get("logEvents", []):
            events += 1
            message_bytes += len(event.get("message", ""))
        turns, sessions = rows_of(batch)
        rows += len(turns) + len(sessions)
        pending_turns += turns
        pending_sessions += sessions
        if len(pending_turns) + len(pending_sessions) >= FLUSH_ROWS:
            parquet_bytes += write_parquet(pending_turns) + write_parquet(pending_sessions)
            pending_turns, pending_sessions = [], []
    parquet_bytes += write_parquet(pending_turns) + write_parquet(pending_sessions)
    seconds = time.perf_counter() - started
    json.dump({"seconds": seconds, "payloads": payloads, "events": events, "message_bytes": message_bytes,
               "rows": rows, "parquet_bytes": parquet_bytes}, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
