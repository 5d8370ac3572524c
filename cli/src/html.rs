//! The report as one self-contained HTML page: the dashboard's views drawn as SVG charts, the
//! alarms that would fire, the slowest calls and the rejects. No scripts, fonts or other files:
//! the page opens offline in any browser, in light and dark mode.

use std::fmt::Write as _;

use crate::report::{ChartData, Charts, Report, SeriesData};
use anyhow::{Result, anyhow};
use plotters::prelude::*;
use voicelake_shared::timefmt;
use voicelake_shared::views::Axis;

/// Chart size in SVG units; the page scales it to the card's width.
const WIDTH: u32 = 640;
const HEIGHT: u32 = 300;
/// At most this many time labels: each is up to 11 characters ("11-24 14:00").
const MAX_TIME_LABELS: usize = 6;

/// Series colours (Tableau 10): distinguishable, and readable on a white and a near-black card.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(214, 39, 40),
];
const THRESHOLD: RGBColor = RGBColor(214, 39, 40);
/// Drawn in black so that the page's style sheet can recolour it for dark mode.
const INK: RGBColor = RGBColor(0, 0, 0);

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn color_css(c: &RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Time ticks on whole steps of a clock (5 min … 1 day), at most [`MAX_TIME_LABELS`] of them.
fn time_ticks(start: i64, end: i64) -> Vec<i64> {
    const STEPS_MIN: [i64; 12] = [1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880];
    let span = (end - start).max(1);
    let step =
        STEPS_MIN.iter().map(|m| m * 60_000).find(|s| span / s < MAX_TIME_LABELS as i64).unwrap_or(span / MAX_TIME_LABELS as i64 + 1);
    let mut t = start.div_euclid(step) * step;
    if t < start {
        t += step;
    }
    let mut ticks = Vec::new();
    while t <= end && ticks.len() < MAX_TIME_LABELS {
        ticks.push(t);
        t += step;
    }
    ticks
}

fn time_label(t: i64, multi_day: bool) -> String {
    let utc = timefmt::utc(t);
    if multi_day { utc.format("%m-%d %H:%M").to_string() } else { utc.format("%H:%M").to_string() }
}

/// A readable number for an axis: no float noise, thousands without decimals.
fn axis_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.1}");
        s.trim_end_matches(".0").to_owned()
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn value_range(values: impl Iterator<Item = f64>, min: Option<f64>, max: Option<f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = min.unwrap_or(if lo.is_finite() { lo.min(0.0) } else { 0.0 });
    let hi = max.unwrap_or(if hi.is_finite() && hi > lo { hi * 1.1 } else { lo + 1.0 });
    (lo, hi)
}

/// Draws one chart as SVG: series as lines with a marker per period, thresholds as lines, and the
/// periods in which the chart's alarm would fire shaded.
/// Where the input ends inside a chart's last period, that period's start: its sums and counts
/// cover only part of it, and drawn like the others they would read as a drop.
fn partial_from(chart: &ChartData, last_event: Option<i64>) -> Option<i64> {
    let period = i64::from(chart.period_seconds) * 1000;
    let last = last_event?;
    let start = last.div_euclid(period) * period;
    // The input covers less than 90% of the period: its values are not the period's.
    (last - start < period * 9 / 10).then_some(start)
}

fn chart_svg(chart: &ChartData, x_range: (i64, i64), partial: Option<i64>) -> Result<String> {
    let period = i64::from(chart.period_seconds) * 1000;
    let on = |axis: Axis| chart.series.iter().filter(move |s| s.axis == axis);
    let left = value_range(
        on(Axis::Left).flat_map(|s| s.points.iter().map(|p| p.1)).chain(chart.thresholds.iter().map(|t| t.value)),
        chart.y_min,
        chart.y_max,
    );
    let right_series: Vec<&SeriesData> = on(Axis::Right).collect();
    let right = value_range(right_series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), Some(0.0), None);
    let multi_day = x_range.1 - x_range.0 > 24 * 3_600_000;
    let ticks = time_ticks(x_range.0, x_range.1);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let font = ("sans-serif", 14).into_font().color(&INK);
        let mut builder = ChartBuilder::on(&root);
        builder.margin(10).x_label_area_size(44).y_label_area_size(64);
        if !right_series.is_empty() {
            builder.right_y_label_area_size(64);
        }
        let mut c = builder
            .build_cartesian_2d((x_range.0..x_range.1).with_key_points(ticks), left.0..left.1)
            .map_err(|e| anyhow!("chart {}: {e}", chart.id))?
            .set_secondary_coord(x_range.0..x_range.1, right.0..right.1);
        c.configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBAColor(128, 128, 128, 0.0))
            .bold_line_style(RGBAColor(128, 128, 128, 0.25))
            .axis_style(INK)
            .label_style(font.clone())
            .axis_desc_style(font.clone())
            .x_desc("event time (UTC)")
            .y_desc(chart.unit)
            .y_labels(6)
            .x_label_formatter(&|t| time_label(*t, multi_day))
            .y_label_formatter(&|v| axis_number(*v))
            .draw()
            .map_err(|e| anyhow!("chart {}: {e}", chart.id))?;
        if !right_series.is_empty() {
            c.configure_secondary_axes()
                .axis_style(INK)
                .label_style(font.clone())
                .axis_desc_style(font.clone())
                .y_desc(chart.right_unit.unwrap_or(""))
                .y_labels(6)
                .y_label_formatter(&|v| axis_number(*v))
                .draw()
                .map_err(|e| anyhow!("chart {}: {e}", chart.id))?;
        }
        let shade = RGBAColor(214, 39, 40, 0.15).filled();
        c.draw_series(
            chart.alarm_periods.iter().map(|&t| Rectangle::new([(t.max(x_range.0), left.0), ((t + period).min(x_range.1), left.1)], shade)),
        )
        .map_err(|e| anyhow!("chart {}: {e}", chart.id))?;
        for t in &chart.thresholds {
            c.draw_series(LineSeries::new([(x_range.0, t.value), (x_range.1, t.value)], THRESHOLD.stroke_width(1)))
                .map_err(|e| anyhow!("chart {}: {e}", chart.id))?;
        }
        // Series drawn later lie on top: each earlier one is a little wider, so a series equal to a
        // later one (p50 = p95 on few samples, two agents alike) still shows as its outline.
        let n = chart.series.len();
        for (i, s) in chart.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let wider = ((n - 1 - i) as u32).min(3);
            // A period's value is drawn at the period's start, as CloudWatch draws it; the partial
            // last period dashed and hollow.
            let cut = partial.unwrap_or(i64::MAX);
            let full: Vec<(i64, f64)> = s.points.iter().copied().filter(|p| p.0 < cut).collect();
            let tail: Vec<(i64, f64)> = full.last().copied().into_iter().chain(s.points.iter().copied().filter(|p| p.0 >= cut)).collect();
            let markers = s.points.iter().map(move |&p| {
                let style = if p.0 >= cut { color.stroke_width(1) } else { color.filled() };
                Circle::new(p, 2 + wider, style)
            });
            let line = LineSeries::new(full, color.stroke_width(2 + 2 * wider));
            let dashed = DashedLineSeries::new(if tail.len() > 1 { tail } else { Vec::new() }, 4, 4, color.stroke_width(2 + 2 * wider));
            let drawn = match s.axis {
                Axis::Left => {
                    c.draw_series(line).map(|_| ()).and(c.draw_series(dashed).map(|_| ())).and(c.draw_series(markers).map(|_| ()))
                }
                Axis::Right => c
                    .draw_secondary_series(line)
                    .map(|_| ())
                    .and(c.draw_secondary_series(dashed).map(|_| ()))
                    .and(c.draw_secondary_series(markers).map(|_| ())),
            };
            drawn.map_err(|e| anyhow!("chart {}: {e}", chart.id))?;
        }
        root.present().map_err(|e| anyhow!("chart {}: {e}", chart.id))?;
    }
    Ok(svg)
}

/// The x range every chart shares: the replay's event time, from the start of the first period of
/// the widest chart to the end of the last period of the narrowest, so every point is inside.
fn shared_x_range(charts: &Charts) -> Option<(i64, i64)> {
    let (first, last) = charts.span?;
    let periods = charts.charts.iter().map(|c| i64::from(c.period_seconds) * 1000);
    let (narrowest, widest) = (periods.clone().min()?, periods.max()?);
    Some((first.div_euclid(widest) * widest, (last.div_euclid(narrowest) + 1) * narrowest))
}

fn legend(chart: &ChartData, partial: Option<(i64, i64)>) -> String {
    let mut s = String::from("<ul class=\"legend\">");
    for (i, series) in chart.series.iter().enumerate() {
        let side = if series.axis == Axis::Right { " (right axis)" } else { "" };
        let _ = write!(
            s,
            "<li><span class=\"swatch\" style=\"background:{}\"></span>{}{side}</li>",
            color_css(&PALETTE[i % PALETTE.len()]),
            esc(&series.label)
        );
    }
    for t in &chart.thresholds {
        let _ = write!(
            s,
            "<li><span class=\"swatch line\" style=\"background:{}\"></span>{} {}</li>",
            color_css(&THRESHOLD),
            esc(&t.label),
            axis_number(t.value)
        );
    }
    if !chart.alarm_periods.is_empty() {
        let _ = write!(s, "<li><span class=\"swatch shade\"></span>{} would be in ALARM</li>", esc(chart.alarm.unwrap_or("alarm")));
    }
    if let Some((from, last)) = partial.filter(|(from, _)| chart.series.iter().any(|s| s.points.iter().any(|p| p.0 >= *from))) {
        let _ = write!(
            s,
            "<li class=\"partial\"><span class=\"swatch line dashed\"></span>the period from {} is partial: the input ends at {}</li>",
            time_label(from, false),
            time_label(last, false)
        );
    }
    s.push_str("</ul>");
    s
}

fn chart_card(chart: &ChartData, x_range: Option<(i64, i64)>, last_event: Option<i64>) -> Result<String> {
    let partial = partial_from(chart, last_event);
    let points: usize = chart.series.iter().map(|s| s.points.len()).sum();
    let mut s = format!(
        "<figure class=\"card\" id=\"chart-{}\" data-series=\"{}\" data-points=\"{points}\"><figcaption><h3>{}</h3><span class=\"period\">per {} min</span></figcaption>",
        chart.id,
        chart.series.iter().filter(|s| !s.points.is_empty()).count(),
        esc(&chart.title),
        chart.period_seconds / 60
    );
    match x_range.filter(|_| points > 0) {
        Some(range) => {
            s.push_str(&chart_svg(chart, range, partial)?);
            s.push_str(&legend(chart, partial.zip(last_event)));
        }
        None if chart.series.is_empty() => {
            s.push_str("<p class=\"empty\">Measured on AWS only, not by a local replay.</p>");
        }
        None => {
            let _ = write!(s, "<p class=\"empty\">No data: nothing in this replay makes {}.</p>", esc(&chart_subject(chart)));
        }
    }
    if !chart.aws_only.is_empty() {
        let names: Vec<String> = chart.aws_only.iter().map(|n| esc(n)).collect();
        let _ = write!(s, "<p class=\"note\">On the CloudWatch dashboard only: {}.</p>", names.join(", "));
    }
    s.push_str("</figure>");
    Ok(s)
}

fn chart_subject(chart: &ChartData) -> String {
    let labels: Vec<&str> = chart.series.iter().map(|s| s.label.as_str()).collect();
    if labels.is_empty() { chart.title.to_lowercase() } else { labels.join(", ") }
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}"))
}

const STYLE: &str = r##"
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #ffffff; --fg: #1c1e21; --muted: #5f6670; --line: #d9dce1; --shade: rgba(214,39,40,.15); }
@media (prefers-color-scheme: dark) { :root { --bg: #121416; --card: #1d2024; --fg: #e6e8eb; --muted: #a3a9b1; --line: #353a40; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .75rem; } h3 { font-size: 1rem; margin: 0; }
.sub { color: var(--muted); margin: 0 0 1rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr)); gap: 1rem; }
.card { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; min-width: 0; }
figcaption { display: flex; justify-content: space-between; align-items: baseline; gap: 1rem; margin-bottom: .25rem; }
.period, .note, .empty { color: var(--muted); font-size: .85rem; }
.empty { padding: 2.5rem 0; text-align: center; }
svg { width: 100%; height: auto; display: block; }
svg text { fill: var(--fg); }
svg [stroke="#000000"] { stroke: var(--muted); }
.legend { list-style: none; padding: 0; margin: .25rem 0 0; display: flex; flex-wrap: wrap; gap: .25rem 1rem; font-size: .85rem; }
.swatch { display: inline-block; width: .9rem; height: .9rem; border-radius: 2px; margin-right: .35rem; vertical-align: -2px; }
.swatch.line { height: 2px; vertical-align: 3px; } .swatch.dashed { background: repeating-linear-gradient(90deg, var(--fg) 0 4px, transparent 4px 8px); } .swatch.shade { background: var(--shade); border: 1px solid #d62728; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .75rem; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
.kpi b { display: block; font-size: 1.35rem; } .kpi span { color: var(--muted); font-size: .85rem; }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); border-radius: 8px; font-size: .9rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.fire { color: #d62728; font-weight: 600; } .ok { color: var(--muted); }
.bar { background: #1f77b4; height: .7rem; border-radius: 2px; }
.wrap { overflow-x: auto; }
"##;

/// The whole page.
pub fn render(report: &Report, charts: &Charts, environment: &str) -> Result<String> {
    let mut s = String::new();
    page_head(&mut s, report, environment);
    kpis(&mut s, report, charts);
    alarms(&mut s, report);
    s.push_str("<h2 id=\"charts\">Dashboard views</h2><div class=\"grid\">");
    let x_range = shared_x_range(charts);
    for chart in &charts.charts {
        s.push_str(&chart_card(chart, x_range, charts.span.map(|(_, last)| last))?);
    }
    s.push_str("</div>");
    slowest_calls(&mut s, report);
    latency(&mut s, report);
    rejects(&mut s, report);
    s.push_str("</body></html>\n");
    Ok(s)
}

/// The document's head, title and what the page shows.
fn page_head(s: &mut String, report: &Report, environment: &str) {
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>voicelake report: {}</title><style>{STYLE}</style></head><body>",
        esc(environment)
    );
    let _ = write!(s, "<h1>voicelake report: {}</h1>", esc(environment));
    let span = match (&report.first_event, &report.last_event) {
        (Some(a), Some(b)) => format!("event time {a} to {b}"),
        _ => "no events with a time".into(),
    };
    let _ = write!(
        s,
        "<p class=\"sub\">{}. The charts are the CloudWatch dashboard's views over this replay: percentiles exact (nearest rank), periods on event time.</p>",
        esc(&span)
    );
}

/// The headline figures, one card each.
fn kpis(s: &mut String, report: &Report, charts: &Charts) {
    let kpis = [
        ("turns", report.counts.turns.to_string()),
        ("calls ended", charts.calls_ended.to_string()),
        ("turn latency p95", format!("{} ms", fmt_ms(report.latency_ms.p95))),
        ("within target", report.target.compliance_pct.map_or("–".into(), |p| format!("{p}%"))),
        ("cost", format!("${:.2}", report.cost.total_usd)),
        ("tool success", report.tools.success_pct.map_or("–".into(), |p| format!("{p}%"))),
        ("rejected", report.counts.rejected.to_string()),
        ("alarms that would fire", report.alarms.iter().filter(|a| a.would_fire).count().to_string()),
    ];
    s.push_str("<div class=\"kpis\">");
    for (label, value) in kpis {
        let _ = write!(s, "<div class=\"kpi\"><b>{}</b><span>{label}</span></div>", esc(&value));
    }
    s.push_str("</div>");
}

/// Each alarm: its state, threshold, breaching periods, worst period and diagnosis.
fn alarms(s: &mut String, report: &Report) {
    s.push_str("<h2 id=\"alarms\">Alarms (default thresholds, evaluated on event time)</h2><div class=\"wrap\"><table><thead><tr><th>alarm</th><th>state</th><th class=\"n\">threshold</th><th class=\"n\">breaching periods</th><th>worst</th><th>diagnosis</th></tr></thead><tbody>");
    for a in &report.alarms {
        let state = if a.would_fire { "<span class=\"fire\">WOULD FIRE</span>" } else { "<span class=\"ok\">ok</span>" };
        let worst = match (a.worst_value, &a.worst_period) {
            (Some(v), Some(p)) => format!("{} at {}", axis_number(v), esc(p)),
            _ => "–".into(),
        };
        let diagnosis = match &a.diagnosis {
            Some(d) => {
                let mut text = esc(&d.headline);
                if let Some(cause) = &d.cause {
                    text.push_str(&format!("<br>cause: {}", esc(cause)));
                }
                if !d.worst_sessions.is_empty() {
                    text.push_str(&format!("<br>worst calls: {}", esc(&d.worst_sessions.join(", "))));
                }
                text
            }
            None => String::new(),
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{state}</td><td class=\"n\">{}</td><td class=\"n\">{}/{}</td><td>{worst}</td><td>{diagnosis}</td></tr>",
            a.alarm,
            axis_number(a.threshold),
            a.periods_breaching,
            a.periods_evaluated
        );
    }
    s.push_str("</tbody></table></div>");
}

fn slowest_calls(s: &mut String, report: &Report) {
    s.push_str("<h2 id=\"slowest\">Slowest calls (by turn latency p95)</h2>");
    if report.slowest_sessions.is_empty() {
        s.push_str("<p class=\"empty\">No complete turns in this replay.</p>");
    } else {
        s.push_str("<div class=\"wrap\"><table><thead><tr><th>session</th><th>agent</th><th class=\"n\">turns</th><th class=\"n\">p95 (ms)</th><th class=\"n\">max (ms)</th><th>dominant component</th></tr></thead><tbody>");
        for x in &report.slowest_sessions {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{:.0}</td><td>{}</td></tr>",
                esc(&x.session_id),
                esc(&x.agent),
                x.turns,
                x.p95_ms,
                x.max_ms,
                x.dominant_component.unwrap_or("–")
            );
        }
        s.push_str("</tbody></table></div>");
    }
}

fn latency(s: &mut String, report: &Report) {
    s.push_str("<h2 id=\"latency\">Latency (ms)</h2><div class=\"wrap\"><table><thead><tr><th></th><th class=\"n\">count</th><th class=\"n\">mean</th><th class=\"n\">min</th><th class=\"n\">std dev</th><th class=\"n\">p50</th><th class=\"n\">p95</th><th class=\"n\">p99</th><th class=\"n\">max</th></tr></thead><tbody>");
    for (name, x) in report.latency_rows() {
        let _ = write!(s, "<tr><td>{}</td><td class=\"n\">{}</td>", esc(&name), x.count);
        for v in [x.mean, x.min, x.std_dev, x.p50, x.p95, x.p99, x.max] {
            let _ = write!(s, "<td class=\"n\">{}</td>", fmt_ms(v));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
}

fn rejects(s: &mut String, report: &Report) {
    s.push_str("<h2 id=\"rejects\">Rejected events by reason</h2>");
    if report.rejected_by_reason.is_empty() {
        s.push_str("<p class=\"empty\">No rejected events.</p>");
    } else {
        let most = report.rejected_by_reason.values().copied().max().unwrap_or(1).max(1);
        let mut reasons: Vec<(&String, &u64)> = report.rejected_by_reason.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        s.push_str("<div class=\"wrap\"><table><thead><tr><th>reason</th><th class=\"n\">events</th><th style=\"width:45%\">share of the largest</th></tr></thead><tbody>");
        for (reason, n) in reasons {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"n\">{n}</td><td><div class=\"bar\" style=\"width:{:.1}%\"></div></td></tr>",
                esc(reason),
                100.0 * *n as f64 / most as f64
            );
        }
        s.push_str("</tbody></table></div>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_period_the_input_covers_only_in_part_is_drawn_dashed_and_named() {
        let minute = 60_000;
        let chart = ChartData {
            id: "turns",
            title: "Turns".into(),
            unit: "count",
            right_unit: None,
            period_seconds: 300,
            y_min: None,
            y_max: None,
            series: vec![SeriesData {
                label: "turns".into(),
                axis: Axis::Left,
                points: vec![(0, 40.0), (5 * minute, 41.0), (10 * minute, 9.0)],
            }],
            thresholds: vec![],
            alarm: None,
            alarm_periods: vec![],
            aws_only: vec![],
        };
        // The input ends 1 min into the 10:00 period: partial. At 4:45 into it: covered.
        assert_eq!(partial_from(&chart, Some(11 * minute)), Some(10 * minute));
        assert_eq!(partial_from(&chart, Some(10 * minute + 285_000)), None);
        let card = chart_card(&chart, Some((0, 15 * minute)), Some(11 * minute)).unwrap();
        assert!(card.contains("the period from 00:10 is partial: the input ends at 00:11"), "{card}");
        let whole = chart_card(&chart, Some((0, 15 * minute)), Some(10 * minute + 285_000)).unwrap();
        assert!(!whole.contains("partial"));
        // The dashes are short strokes of their own; the hollow marker has no fill.
        let strokes = |svg: &str| svg.matches("<polyline").count() + svg.matches("<line").count();
        assert!(strokes(&card) > strokes(&whole) + 2, "{} against {}", strokes(&card), strokes(&whole));
        assert!(card.contains("fill=\"none\""), "a hollow marker for the partial value");
    }

    #[test]
    fn a_series_equal_to_a_later_one_stays_visible_as_its_outline() {
        let points = vec![(0, 900.0), (300_000, 950.0)];
        let series = |label: &str| SeriesData { label: label.into(), axis: Axis::Left, points: points.clone() };
        let chart = ChartData {
            id: "turn-latency",
            title: "Turn latency".into(),
            unit: "ms",
            right_unit: None,
            period_seconds: 300,
            y_min: None,
            y_max: None,
            series: vec![series("p50"), series("p95")],
            thresholds: vec![],
            alarm: None,
            alarm_periods: vec![],
            aws_only: vec![],
        };
        let svg = chart_svg(&chart, (0, 600_000), None).unwrap();
        let lines: Vec<&str> = svg.split("<polyline").skip(1).collect();
        let width = |l: &str| l.split("stroke-width=\"").nth(1).and_then(|w| w.split('"').next()).map(str::to_owned);
        let widths: Vec<Option<String>> = lines.iter().map(|l| width(l)).collect();
        assert!(widths.len() >= 2, "{svg}");
        assert_ne!(widths[0], widths[widths.len() - 1], "the first series is drawn wider than the one on top: {widths:?}");
    }

    #[test]
    fn time_ticks_stay_few_and_on_the_clock() {
        let hour = 3_600_000;
        let week = time_ticks(0, 7 * 24 * hour);
        assert!(week.len() <= MAX_TIME_LABELS && week.len() >= 3, "{week:?}");
        assert!(week.iter().all(|t| t % (24 * hour) == 0));
        let short = time_ticks(10 * 60_000, 40 * 60_000);
        assert!(short.len() <= MAX_TIME_LABELS && !short.is_empty(), "{short:?}");
        assert!(short.iter().all(|t| t % (5 * 60_000) == 0));
        assert_eq!(time_ticks(5, 5).len(), 0);
    }

    #[test]
    fn untrusted_text_is_escaped() {
        assert_eq!(esc("<script>\"a\" & 'b'</script>"), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;");
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(axis_number(1500.0), "1500");
        assert_eq!(axis_number(12.5), "12.5");
        assert_eq!(axis_number(3.0), "3");
        assert_eq!(axis_number(0.2), "0.2");
        assert_eq!(axis_number(0.0123), "0.0123");
    }
}
