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
    async fn make_sandbox(&self, plan: &Plan) -> Result<crate::isolate::Sandbox, String> {
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
}
