//! A small growable bitset over column indices of one table.
//!
//! Used by resolution (selected columns), combination (allowed/denied columns) and
//! verification. Plain data; iteration is always in ascending index order.

/// A set of column indices.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColSet {
    words: Vec<u64>,
}

impl ColSet {
    pub fn new() -> Self {
        ColSet { words: Vec::new() }
    }

    /// `{0, …, n-1}`.
    pub fn full(n: usize) -> Self {
        let mut words = vec![u64::MAX; n.div_ceil(64)];
        if !n.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        ColSet { words }
    }

    pub fn insert(&mut self, i: u32) {
        let w = (i / 64) as usize;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        if let Some(word) = self.words.get_mut(w) {
            *word |= 1u64 << (i % 64);
        }
    }

    pub fn contains(&self, i: u32) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn union_with(&mut self, other: &ColSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    pub fn subtract(&mut self, other: &ColSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !*b;
        }
    }

    pub fn intersect_with(&mut self, other: &ColSet) {
        for (i, a) in self.words.iter_mut().enumerate() {
            *a &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    pub fn intersects(&self, other: &ColSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    pub fn is_subset(&self, other: &ColSet) -> bool {
        self.words
            .iter()
            .enumerate()
            .all(|(i, a)| a & !other.words.get(i).copied().unwrap_or(0) == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, w)| {
            let mut w = *w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(wi as u32 * 64 + b)
            })
        })
    }

    pub fn first(&self) -> Option<u32> {
        self.iter().next()
    }

    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }
}

impl FromIterator<u32> for ColSet {
    fn from_iter<T: IntoIterator<Item = u32>>(iter: T) -> Self {
        let mut s = ColSet::new();
        for i in iter {
            s.insert(i);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let full = ColSet::full(70);
        assert_eq!(full.len(), 70);
        assert!(full.contains(69) && !full.contains(70));
        let a: ColSet = [1, 65].into_iter().collect();
        let b: ColSet = [1].into_iter().collect();
        assert!(b.is_subset(&a) && !a.is_subset(&b));
        assert!(a.is_subset(&full));
        let mut c = full.clone();
        c.subtract(&a);
        assert_eq!(c.len(), 68);
        assert!(!c.intersects(&a));
        assert_eq!(a.to_vec(), vec![1, 65]);
        assert!(ColSet::full(0).is_empty());
        assert_eq!(ColSet::full(64).len(), 64);
    }
}
