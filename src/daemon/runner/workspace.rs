//! Where the agent works, set up before its first attempt: a worktree or copy
//! for an isolated run, else a git snapshot of the workdir (to tell later what
//! the agent changed).

use super::Runner;
use crate::plan::Plan;
use crate::store::atomic::write_json_atomic;
use crate::task::Isolation;

impl Runner {
    /// Makes the sandbox of an isolated run, or takes the workdir's git snapshot.
    /// An error is why the sandbox could not be made.
    pub(super) async fn prepare_workspace(&mut self, plan: &Plan) -> Result<(), String> {
        if plan.isolation != Isolation::None {
            // The agent works on a worktree or a copy; the workdir is not touched.
            self.sandbox = Some(self.make_sandbox(plan).await?);
        } else if crate::changes::in_repository(&plan.workdir) {
            let (wd, home) = (plan.workdir.clone(), self.shared.home.root().to_path_buf());
            self.git_before = tokio::task::spawn_blocking(move || crate::changes::snapshot(&wd, &home))
                .await
                .ok()
                .flatten();
        }
        Ok(())
    }

    /// Makes (or, after a crash, finds) the task's worktree or copy, and records it.
    /// A follow-up in the session of an isolated task (`reply`, `resume`) goes on
    /// in its parent's sandbox: the agent's session knows that folder (its system
    /// prompt names it, and it may write there by its absolute path), and the
    /// conversation's changes build on each other. Its `changes.diff` is then the
    /// whole conversation's, against the same base.
    async fn make_sandbox(&self, plan: &Plan) -> Result<crate::isolate::Sandbox, String> {
        if let Some(sb) = self.parents_sandbox(plan) {
            write_json_atomic(&self.claimed.dir.isolation(), &sb)
                .map_err(|e| format!("cannot record the sandbox: {e}"))?;
            return Ok(sb);
        }
        let (kind, wd, home, id) = (
            plan.isolation,
            plan.workdir.clone(),
            self.shared.home.root().to_path_buf(),
            self.id().to_string(),
        );
        let sb = tokio::task::spawn_blocking(move || crate::isolate::prepare(kind, &wd, &home, &id))
            .await
            .map_err(|e| e.to_string())??;
        write_json_atomic(&self.claimed.dir.isolation(), &sb).map_err(|e| format!("cannot record the sandbox: {e}"))?;
        Ok(sb)
    }

    /// The sandbox of the task whose session this one continues, if it still exists.
    fn parents_sandbox(&self, plan: &Plan) -> Option<crate::isolate::Sandbox> {
        plan.resume_session.as_ref()?;
        let parent = plan.parent_task_id.as_deref()?;
        let dir = crate::store::TaskDir::new(self.shared.home.task_dir(parent));
        let mut sb: crate::isolate::Sandbox = crate::store::read::json(&dir.isolation())?;
        if sb.kind != plan.isolation || sb.committed || !sb.run_dir.is_dir() {
            return None;
        }
        sb.stat = None;
        Some(sb)
    }
}
