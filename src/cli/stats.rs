//! `orchestrator stats`: counts, success rate, durations, retries and cost, from the index.

use super::common::{human_ms, print_json, since};
use super::{Cli, exit};
use crate::store::index;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  orchestrator stats\n  orchestrator stats --since 7d --json")]
pub struct Args {
    /// Only tasks that finished within this long, e.g. 24h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let cutoff = args.since.as_deref().map(since).transpose()?.map(|t| t.to_string());
    let index = match index::read(&home) {
        Some(i) => i,
        None => index::rebuild(&home)?,
    };
    let rows: Vec<_> = index
        .tasks
        .values()
        .filter(|r| cutoff.as_ref().is_none_or(|c| &r.finished_at >= c))
        .collect();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_agent: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_error: BTreeMap<String, u64> = BTreeMap::new();
    // Tasks the mediator saw: `mediated`, or why its answer was not used.
    let mut mediation: BTreeMap<String, u64> = BTreeMap::new();
    let mut durations = Vec::with_capacity(rows.len());
    let (mut attempts, mut retries, mut cost, mut costed) = (0u64, 0u64, 0f64, 0u64);
    for r in &rows {
        *by_status.entry(r.status.name().into()).or_default() += 1;
        *by_agent.entry(r.agent.clone()).or_default() += 1;
        if let Some(e) = &r.error_kind {
            *by_error.entry(e.to_string()).or_default() += 1;
        }
        if let Some(m) = &r.mediation {
            *mediation.entry(m.clone()).or_default() += 1;
        }
        durations.push(r.duration_ms);
        attempts += u64::from(r.attempts);
        retries += u64::from(r.retries.unwrap_or(r.attempts.saturating_sub(1)));
        if let Some(c) = r.cost_usd {
            cost += c;
            costed += 1;
        }
    }
    durations.sort_unstable();
    let n = rows.len() as u64;
    let succeeded = by_status.get("succeeded").copied().unwrap_or(0);
    let out = json!({
        "tasks": n,
        "by_status": by_status,
        "by_agent": by_agent,
        "by_error": by_error,
        "by_role": Map::new(),
        "mediation": mediation,
        "success_rate": if n > 0 { succeeded as f64 / n as f64 } else { 0.0 },
        "duration_ms": {"p50": percentile(&durations, 50.0), "p95": percentile(&durations, 95.0), "max": durations.last().copied().unwrap_or(0)},
        "attempts": attempts,
        "retries": retries,
        "cost_usd": {"total": cost, "mean": if costed > 0 { cost / costed as f64 } else { 0.0 }},
        "since": cutoff,
    });
    if args.json {
        print_json(&out)?;
        return Ok(exit::OK);
    }
    let line = |m: &Value| {
        m.as_object()
            .map(|o| o.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    println!(
        "tasks:        {n}{}",
        cutoff.map(|c| format!(" (finished since {c})")).unwrap_or_default()
    );
    println!("by status:    {}", line(&out["by_status"]));
    println!("by agent:     {}", line(&out["by_agent"]));
    println!(
        "errors:       {}",
        if by_error.is_empty() {
            "none".into()
        } else {
            line(&out["by_error"])
        }
    );
    println!(
        "success rate: {:.1}%",
        out["success_rate"].as_f64().unwrap_or(0.0) * 100.0
    );
    println!(
        "duration:     p50 {}, p95 {}, max {}",
        human_ms(percentile(&durations, 50.0)),
        human_ms(percentile(&durations, 95.0)),
        human_ms(durations.last().copied().unwrap_or(0))
    );
    if !mediation.is_empty() {
        println!("mediator:     {}", line(&out["mediation"]));
    }
    println!("attempts:     {attempts} ({retries} retries)");
    if costed > 0 {
        println!(
            "cost:         ${cost:.4} total, ${:.4} mean over the {costed} tasks that reported one",
            out["cost_usd"]["mean"].as_f64().unwrap_or(0.0)
        );
    } else {
        println!("cost:         - (no task reported a cost)");
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(super::percentile(&v, 50.0), 50);
        assert_eq!(super::percentile(&v, 95.0), 95);
        assert_eq!(super::percentile(&[7], 95.0), 7);
        assert_eq!(super::percentile(&[], 50.0), 0);
    }
}
