//! "Did you mean ...?" for a misspelt key of a task file or the config.

/// The name in `known` nearest to `word`, if it is near enough to be what was
/// meant: at most a third of its letters off (one at least).
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    // A key is a short word; a megabyte of one from an untrusted file is not
    // compared letter by letter with every name.
    if word.len() > 64 {
        return None;
    }
    known
        .iter()
        .filter(|k| k.len().abs_diff(word.len()) <= k.len().max(word.len()) / 3 + 1)
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

/// Edits between `a` and `b` (insert, delete, replace, or swap two
/// neighbours: `titel` is one edit from `title`), by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_and_far_ones_not() {
        let known = ["command", "max_turns", "max_tool_calls", "title"];
        assert_eq!(closest("comand", &known), Some("command"));
        assert_eq!(closest("max_turn", &known), Some("max_turns"));
        assert_eq!(closest("titel", &known), Some("title"));
        assert_eq!(closest("colour", &known), None);
        assert_eq!(closest("", &known), None);
        assert_eq!(
            closest(&"comand".repeat(100_000), &known),
            None,
            "a huge key is not compared"
        );
    }
}
