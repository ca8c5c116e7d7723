//! `GET /stats`: success rate, cost per day, durations and error kinds from
//! the index, as charts drawn here in SVG (no script, no library); and the
//! home's health: daemons, agent pauses, the notify outbox, and every check
//! `doctor` makes.

use super::html::esc;
use super::{App, blocking};
use crate::store::index;
use axum::extract::State;
use axum::response::{Html, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// Days of cost shown.
const DAYS: usize = 14;

pub async fn page(State(app): State<Arc<App>>) -> Result<Html<String>, Response> {
    let a = app.clone();
    let body = blocking(move || render(&a)).await?;
    Ok(Html(app.page("Stats & health", "Stats & health").render(&body)))
}

fn render(app: &App) -> String {
    let home = &app.home;
    if !app.read_only {
        index::ensure(home);
    }
    let rows = index::newest(home, 0, |_, _| true);
    let mut out = String::from("<h1>Stats</h1>");
    let total = rows.len();
    let ok = rows
        .iter()
        .filter(|(_, r)| r.status == crate::store::record::Status::Succeeded)
        .count();
    let cost: f64 = rows.iter().filter_map(|(_, r)| r.cost_usd).sum();
    let rate = if total == 0 {
        "–".to_string()
    } else {
        format!("{:.1}%", ok as f64 * 100.0 / total as f64)
    };
    let _ = write!(
        out,
        "<div class=\"tiles\"><div><b id=\"success-rate\">{rate}</b>success rate</div>\
         <div><b>{total}</b>finished tasks</div><div><b>${cost:.2}</b>reported cost</div></div>"
    );

    let today = jiff::Zoned::now().date();
    let mut per_day: BTreeMap<String, f64> = BTreeMap::new();
    for i in (0..DAYS).rev() {
        if let Ok(d) = today.checked_sub(jiff::Span::new().days(i as i64)) {
            per_day.insert(d.to_string(), 0.0);
        }
    }
    let mut by_status: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_agent: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, f64> = BTreeMap::new();
    let buckets = [
        ("< 10 s", 10_000),
        ("< 1 min", 60_000),
        ("< 5 min", 300_000),
        ("< 15 min", 900_000),
        ("< 1 h", 3_600_000),
        ("≥ 1 h", u64::MAX),
    ];
    let mut durations = vec![0.0; buckets.len()];
    for (_, r) in &rows {
        if let Some(day) = r.finished_at.get(..10)
            && let Some(c) = per_day.get_mut(day)
        {
            *c += r.cost_usd.unwrap_or(0.0);
        }
        *by_status.entry(r.status.name().into()).or_default() += 1.0;
        *by_agent.entry(r.agent.clone()).or_default() += 1.0;
        if let Some(k) = r.error_kind {
            *by_kind.entry(k.as_str().into()).or_default() += 1.0;
        }
        if let Some(i) = buckets.iter().position(|(_, max)| r.duration_ms < *max) {
            durations[i] += 1.0;
        }
    }
    let days: Vec<(String, f64)> = per_day.into_iter().map(|(d, c)| (d[5..].to_string(), c)).collect();
    out.push_str("<div class=\"charts\">");
    out.push_str(&bars("Cost per day (USD)", &days, |v| format!("{v:.2}")));
    out.push_str(&bars(
        "Durations",
        &buckets
            .iter()
            .zip(&durations)
            .map(|((l, _), n)| (l.to_string(), *n))
            .collect::<Vec<_>>(),
        |v| format!("{v}"),
    ));
    out.push_str(&bars("By status", &by_status.into_iter().collect::<Vec<_>>(), |v| {
        format!("{v}")
    }));
    out.push_str(&bars("By agent", &by_agent.into_iter().collect::<Vec<_>>(), |v| {
        format!("{v}")
    }));
    out.push_str(&bars("Error kinds", &by_kind.into_iter().collect::<Vec<_>>(), |v| {
        format!("{v}")
    }));
    out.push_str("</div>");
    health(app, &mut out);
    out
}

/// A bar chart: one bar a label, its value above it.
fn bars(title: &str, data: &[(String, f64)], label: impl Fn(f64) -> String) -> String {
    const W: usize = 36;
    const H: f64 = 120.0;
    let max = data.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let width = (data.len().max(1) * W) + 10;
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"170\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    if data.is_empty() {
        svg.push_str("<text x=\"5\" y=\"80\">no data yet</text>");
    }
    for (i, (name, v)) in data.iter().enumerate() {
        let h = if max > 0.0 { v / max * H } else { 0.0 };
        let x = 5 + i * W;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\"><title>{}: {}</title></rect>\
             <text x=\"{}\" y=\"{:.1}\" class=\"v\">{}</text><text x=\"{}\" y=\"160\" class=\"l\">{}</text>",
            135.0 - h,
            W - 8,
            esc(name),
            esc(&label(*v)),
            x + (W - 8) / 2,
            130.0 - h,
            esc(&label(*v)),
            x + (W - 8) / 2,
            esc(&short(name))
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn short(label: &str) -> String {
    let mut s: String = label.chars().take(7).collect();
    if label.chars().count() > 7 {
        s.push('…');
    }
    s
}

fn health(app: &App, out: &mut String) {
    let home = &app.home;
    out.push_str("<h1>Health</h1>");
    let daemons = crate::store::daemons::live(home);
    if daemons.is_empty() {
        out.push_str("<p class=\"warn\">No daemon is running.</p>");
    }
    for d in &daemons {
        let _ = write!(
            out,
            "<p>daemon {} (pid {}, since {}) · {}/{} slots busy · {} queued</p>",
            esc(&d.worker),
            d.pid,
            esc(&d.started_at),
            d.running.len(),
            d.max_concurrent,
            d.queued.total
        );
        for (agent, until) in &d.paused {
            let _ = write!(
                out,
                "<p class=\"paused\">{} paused until {}</p>",
                esc(agent),
                esc(until)
            );
        }
    }
    let count = |dir: &str| std::fs::read_dir(home.root().join("notify").join(dir)).map_or(0, |d| d.flatten().count());
    let _ = write!(
        out,
        "<p>notifications: {} waiting in notify/outbox/, {} set aside in notify/failed/</p>",
        count("outbox"),
        count("failed")
    );
    let checks = app.health_checks();
    out.push_str(
        "<table class=\"checks\"><thead><tr><th></th><th>Check</th><th>Detail</th><th>Fix</th></tr></thead><tbody>",
    );
    for c in checks {
        let mark = match (c.ok, c.level) {
            (true, _) => "ok",
            (false, "warn") => "warn",
            (false, "info") => "info",
            _ => "fail",
        };
        let _ = write!(
            out,
            "<tr class=\"c-{mark}\"><td>{mark}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.detail),
            esc(c.fix.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table>");
}
