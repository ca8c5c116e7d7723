//! Task ids: `<ulid>-<slug>`, e.g. `01jd3k8q7x9v2m4n6p8r0t2w4y-fix-login`.
//!
//! The ULID part is unique across daemons and machines and sorts by creation
//! time; the slug, taken from the task file's name, makes ids readable in `ls`.
//! Only `[0-9a-z-]` is used, so an id is a safe file name on every OS and on
//! case-insensitive filesystems.

const ULID_LEN: usize = 26;
const SLUG_MAX: usize = 40;

/// A fresh id for a task file with stem `stem`.
pub fn new_id(stem: &str) -> String {
    let ulid = ulid::Ulid::generate().to_string().to_ascii_lowercase();
    format!("{ulid}-{}", slug(stem))
}

/// Lower-case ASCII letters and digits of `text`, other runs folded to one `-`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if out.len() >= SLUG_MAX {
                break;
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "task".to_string() } else { out }
}

/// Is `text` an id this module could have made? A task file whose stem is a
/// well-formed id keeps it, so `submit` can print the id before any daemon runs.
pub fn is_well_formed(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < ULID_LEN + 2 || b[ULID_LEN] != b'-' {
        return false;
    }
    let (ulid, rest) = text.split_at(ULID_LEN);
    let slug = &rest[1..];
    ulid::Ulid::from_string(&ulid.to_ascii_uppercase()).is_ok()
        && ulid.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        && slug.len() <= SLUG_MAX
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && slug
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_sort_by_time() {
        let a = new_id("Fix the Login!");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("fix the login");
        assert!(is_well_formed(&a), "{a}");
        assert!(a.ends_with("-fix-the-login"));
        assert!(a < b);
    }

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("héllo wörld"), "h-llo-w-rld");
        assert_eq!(slug("日本語"), "task");
        assert_eq!(slug("a\nb"), "a-b");
        assert!(slug(&"x".repeat(500)).len() <= SLUG_MAX);
    }

    #[test]
    fn rejects_malformed_ids() {
        assert!(!is_well_formed("hello"));
        assert!(!is_well_formed("01JD3K8Q7X9V2M4N6P8R0T2W4Y-upper"));
        assert!(!is_well_formed("01jd3k8q7x9v2m4n6p8r0t2w4y-"));
        assert!(!is_well_formed("01jd3k8q7x9v2m4n6p8r0t2w4y-a/b"));
        assert!(is_well_formed("01jd3k8q7x9v2m4n6p8r0t2w4y-ok"));
    }
}
