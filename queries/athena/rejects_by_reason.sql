-- name: rejects_by_reason
-- description: Rejected input by reason and log group, with the newest raw message of each; a retried batch's second copy is not counted. Parameters: first day, last day (yyyy-MM-dd).
SELECT reason, log_group,
       -- One per CloudWatch event (a whole undecodable payload has none: its text and time identify it).
       count(DISTINCT coalesce(event_id, concat(cast(event_time AS varchar), ':', raw_message))) AS rejected,
       max(event_time) AS latest,
       max_by(substr(raw_message, 1, 500), event_time) AS latest_raw_message,
       max_by(detail, event_time) AS latest_detail
FROM rejects
WHERE dt BETWEEN ? AND ?
GROUP BY reason, log_group
ORDER BY rejected DESC
