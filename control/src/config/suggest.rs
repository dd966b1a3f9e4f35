//! Nearest-keyword suggestions for misspelt keywords, by Levenshtein edit distance.

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

/// Levenshtein distance between `a` and `b`, counted in characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_basics() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn nearest_typo() {
        assert_eq!(nearest("adjacenency", &["neighborhood", "adjacency"]), Some("adjacency"));
        assert_eq!(nearest("zzz", &["router", "tenant"]), None);
    }
}
