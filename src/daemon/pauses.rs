//! Agent-wide pauses: a rate or usage limit stops every task of that agent,
//! not just the one that hit it, until the limit resets.

use crate::config::AgentKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, Clone, Default)]
pub struct Pauses(Arc<Mutex<HashMap<AgentKind, SystemTime>>>);

impl Pauses {
    /// Pauses `agent` until `until` (a later pause wins).
    pub fn pause(&self, agent: AgentKind, until: SystemTime) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let slot = m.entry(agent).or_insert(until);
        if *slot < until {
            *slot = until;
        }
    }

    /// When `agent` may run again, if it is paused now.
    pub fn until(&self, agent: AgentKind) -> Option<SystemTime> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&agent).copied().filter(|t| *t > SystemTime::now())
    }

    pub fn is_paused(&self, agent: AgentKind) -> bool {
        self.until(agent).is_some()
    }

    /// Current pauses as published in `run/`: agent -> RFC 3339 end.
    pub fn published(&self) -> std::collections::BTreeMap<String, String> {
        let now = SystemTime::now();
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter(|(_, t)| **t > now)
            .filter_map(|(a, t)| Some((a.name().to_string(), jiff::Timestamp::try_from(*t).ok()?.to_string())))
            .collect()
    }

    /// The soonest moment a current pause ends.
    pub fn next_expiry(&self) -> Option<SystemTime> {
        let now = SystemTime::now();
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.values().copied().filter(|t| *t > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn later_pause_wins_and_expired_ones_do_not_count() {
        let p = Pauses::default();
        let now = SystemTime::now();
        p.pause(AgentKind::Claude, now + Duration::from_secs(60));
        p.pause(AgentKind::Claude, now + Duration::from_secs(10));
        assert_eq!(p.until(AgentKind::Claude), Some(now + Duration::from_secs(60)));
        assert!(!p.is_paused(AgentKind::Command));
        p.pause(AgentKind::Command, now - Duration::from_secs(1));
        assert!(!p.is_paused(AgentKind::Command));
        assert_eq!(p.next_expiry(), Some(now + Duration::from_secs(60)));
    }
}
