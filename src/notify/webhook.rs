//! `notify.webhook`: the event line POSTed as JSON.
//!
//! Headers: `X-Orchestrator-Event` (the event's name), `X-Orchestrator-Delivery`
//! (the notification's id: the same on every attempt, so a receiver can drop
//! a repeat) and, with a `secret`, `X-Orchestrator-Signature: sha256=<hex>`,
//! the HMAC-SHA256 of the body under the secret (as GitHub signs its hooks).

use super::Failure;
use crate::config::WebhookConfig;
use hmac::{Hmac, Mac};
use serde_json::Value;

/// The signature header's value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

pub fn send(http: &ureq::Agent, w: &WebhookConfig, delivery: &str, event: &Value) -> Result<(), Failure> {
    let body = serde_json::to_vec(event).map_err(|e| Failure::retry(e.to_string()))?;
    let mut req = http
        .post(&w.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("orchestrator/", env!("CARGO_PKG_VERSION")))
        .header("x-orchestrator-event", event["event"].as_str().unwrap_or(""))
        .header("x-orchestrator-delivery", delivery);
    if let Some(secret) = &w.secret {
        req = req.header("x-orchestrator-signature", signature(secret, &body));
    }
    let resp = req.send(&body[..]).map_err(|e| Failure::retry(e.to_string()))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Failure::retry(format!("the webhook answered HTTP {status}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
