//! The plan a task runs with: the one recorded before a crash, or a new one
//! made from the claimed file (checked again), the mediator's proposal when
//! it sees the task, and the digest of earlier tasks.

use super::Runner;
use crate::events::Event;
use crate::intake::read_capped;
use crate::plan::{self, Plan};
use crate::task::Rejection;

impl Runner {
    /// The plan this task runs with: the recorded one after a crash, else a new one.
    pub(super) async fn plan(&mut self) -> Result<Plan, Rejection> {
        let cfg = self.config.clone();
        // Just claimed (the file still the one checked): plan.json cannot exist
        // yet. Else a crash may have left one to go on with. Either way the file
        // is read and checked again, its workdir resolved again: it may have
        // waited in the queue, and a folder on that path may have been swapped
        // for a symlink meanwhile.
        let fresh = self
            .judged
            .take()
            .is_some_and(|q| q.still_matches(&self.claimed.task_file));
        if !fresh && let Some(plan) = crate::store::read::json::<Plan>(&self.claimed.dir.plan()) {
            return Ok(plan);
        }
        // The claimed entry is checked as it was in the inbox before it is read:
        // swapped for a link (or a hard link) since, it is no task.
        if let Ok(meta) = std::fs::symlink_metadata(&self.claimed.task_file) {
            if let Some(r) = crate::intake::file_rejection(&meta, self.shared.owner_only) {
                return Err(r);
            }
            self.task_file_stamp = Some((meta.len(), meta.modified().ok()));
        }
        let bytes = read_capped(&self.claimed.task_file, self.config.max_task_bytes).map_err(|e| {
            Rejection::new(
                "unreadable",
                format!("the claimed task file cannot be read: {e}"),
                "submit the task again",
            )
        })?;
        // The very bytes that were judged, parsed then: only the workdir is
        // placed again. Otherwise the file is checked whole.
        let kept = self.judged_spec.take().filter(|k| fresh && k.bytes == bytes);
        let (mut spec, mut wd) = match kept {
            Some(k) => {
                let wd = crate::task::place(&k.spec, &cfg, self.shared.home.root())?;
                (k.spec, wd)
            }
            None => crate::task::check(&self.claimed.source_file, &bytes, &cfg, self.shared.home.root())?,
        };
        // A loose note may be structured by the mediator (a model, on the
        // blocking pool: it waits up to its timeout); its answer is checked
        // as a hand-written task would be, and the parser's stands otherwise.
        let mut mediation = None;
        if crate::mediator::applies(&cfg, &spec) {
            let (config, home, parsed) = (cfg.clone(), self.shared.home.clone(), spec.clone());
            let (mediated, record) =
                tokio::task::spawn_blocking(move || crate::mediator::mediate(&config, home.root(), &parsed))
                    .await
                    .unwrap_or_else(|e| {
                        (
                            None,
                            crate::vocab::Mediation {
                                used: false,
                                reason: Some("invalid_answer".into()),
                                detail: Some(format!("the mediator's thread failed: {e}")),
                                model: String::new(),
                                duration_ms: 0,
                                dropped: Vec::new(),
                            },
                        )
                    });
            if let Some((s, w)) = mediated {
                (spec, wd) = (s, w);
            }
            // A server's error text may echo the key it was sent (or anything
            // else): it goes to plan.json, result.json and the logs redacted.
            let mut record = record;
            if let Some(d) = &record.detail {
                let d = self.redactor.redact(d).into_owned();
                tracing::info!(task = self.id(), reason = ?record.reason, detail = %d, "the mediator's proposal was not used");
                record.detail = Some(d);
            }
            self.emit(Event::TaskMediated(record.clone()));
            mediation = Some(record);
        }
        // The tasks it waited for: as the daemon saw them end, else looked up.
        let waited_for = match self.waited_for.take() {
            Some(ids) => ids,
            None if spec.deps.is_empty() || spec.deps.no_context => Vec::new(),
            None => crate::deps::ids(&self.shared.home, &spec.deps),
        };
        let mut context = crate::context::gather(&self.shared.home, cfg.context_budget, &spec, &waited_for);
        if let Some(c) = context.take() {
            let config = cfg.clone();
            context = tokio::task::spawn_blocking(move || c.condense(&config)).await.ok();
        }
        let mut plan = plan::build(
            &spec,
            &cfg,
            plan::Context {
                id: self.id(),
                source_file: &self.claimed.source_file,
                workdir: wd,
                queued_at: self.queued_at.clone(),
            },
        );
        if let Some(m) = mediation {
            if m.used {
                plan.parsed_by = "mediator".into();
            }
            plan.mediation = Some(m);
        }
        // An earlier answer may hold a secret: the digest is written to
        // plan.json and given to the agent redacted, as the answer's record is.
        plan.context = context.map(|mut c| {
            if let std::borrow::Cow::Owned(t) = self.redactor.redact(&c.text) {
                c.text = t;
            }
            c
        });
        // The title (by default the prompt's first line) goes to index.json,
        // result.json and every listing: a key in the prompt must not.
        if let std::borrow::Cow::Owned(t) = self.redactor.redact(&plan.title) {
            plan.title = t;
        }
        // Written in place, not through a temporary file: it is written once, before the
        // agent starts, and a torn plan.json (crash mid-write) is never valid JSON, so the
        // reader above plans again. One rename less per task.
        let mut bytes = serde_json::to_vec_pretty(&plan).expect("a plan serialises");
        bytes.push(b'\n');
        if let Err(e) = std::fs::write(self.claimed.dir.plan(), bytes) {
            tracing::warn!(task = self.id(), error = %e, "could not write plan.json");
        }
        Ok(plan)
    }
}
