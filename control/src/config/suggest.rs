//! Nearest-keyword suggestions for misspelt keywords, by edit distance (optimal string
//! alignment: insertions, deletions, substitutions and swaps of adjacent characters).

/// Words longer than this are not compared: no keyword is near them.
const MAX_WORD: usize = 64;

/// Returns the candidate nearest to `word`, if one is close enough to be a likely typo: at
/// most a third of the word's length in edits, and at least one. Earlier candidates win ties.
pub fn nearest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    if word.chars().count() > MAX_WORD {
        return None;
    }
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'static str)> = None;
    for &candidate in candidates {
        let d = distance(word, candidate);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance between `a` and `b` in characters, counting a swap of two adjacent
/// characters as one edit (so `nmae` is one edit from `name`).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between the first i characters of a and the first j of b.
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_basics() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("same", "same"), 0);
        assert_eq!(distance("nmae", "name"), 1);
    }

    #[test]
    fn nearest_typo() {
        assert_eq!(nearest("adjacenency", &["neighborhood", "adjacency"]), Some("adjacency"));
        assert_eq!(nearest("zzz", &["router", "tenant"]), None);
    }
}
