//! An insertion-ordered table keyed by string id, with cursor pagination. Cursors are item
//! ids; an id keeps its place after the item is removed, so a client paging while someone
//! deletes the item it last saw carries on where it was. Depends on nothing else of ours.

use std::collections::{BTreeMap, HashMap};

/// Something stored in a [`Table`]: it knows its own id.
pub trait Keyed {
    /// The id the table indexes the item by (also the pagination cursor).
    fn key(&self) -> &str;
}

/// Items in insertion order, found by id in O(1) and paged from a cursor in O(log n).
#[derive(Debug, Clone)]
pub struct Table<T> {
    rows: BTreeMap<u64, T>,
    // Keeps removed ids too, so their position stays usable as a cursor.
    index: HashMap<String, u64>,
    next: u64,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            index: HashMap::new(),
            next: 0,
        }
    }
}

/// The cursor does not name an item this table has ever held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCursor;

impl<T: Keyed> Table<T> {
    /// Appends an item (or replaces the live item with the same id, which moves to the end).
    pub fn insert(&mut self, item: T) {
        let key = item.key().to_owned();
        if let Some(old) = self.index.get(&key) {
            self.rows.remove(old);
        }
        let seq = self.next;
        self.next += 1;
        self.index.insert(key, seq);
        self.rows.insert(seq, item);
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.index.get(id).and_then(|seq| self.rows.get(seq))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        match self.index.get(id) {
            Some(seq) => self.rows.get_mut(seq),
            None => None,
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        let seq = *self.index.get(id)?;
        self.rows.remove(&seq)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.rows.retain(|_, item| keep(item));
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.rows.values()
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut T> {
        self.rows.values_mut()
    }

    /// Up to `limit` items after the cursor (in `desc` order when asked) that pass `keep`,
    /// and whether more such items follow.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        desc: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<&T>, bool), UnknownCursor> {
        let start = match after {
            Some(id) => Some(*self.index.get(id).ok_or(UnknownCursor)?),
            None => None,
        };
        let iter: Box<dyn Iterator<Item = &T>> = match (start, desc) {
            (None, false) => Box::new(self.rows.values()),
            (None, true) => Box::new(self.rows.values().rev()),
            (Some(s), false) => Box::new(self.rows.range(s + 1..).map(|(_, v)| v)),
            (Some(s), true) => Box::new(self.rows.range(..s).rev().map(|(_, v)| v)),
        };
        let mut out: Vec<&T> = iter.filter(|t| keep(t)).take(limit + 1).collect();
        let has_more = out.len() > limit;
        out.truncate(limit);
        Ok((out, has_more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(String);
    impl Keyed for Item {
        fn key(&self) -> &str {
            &self.0
        }
    }

    fn table(n: usize) -> Table<Item> {
        let mut t = Table::default();
        for i in 0..n {
            t.insert(Item(format!("i{i}")));
        }
        t
    }

    fn ids(v: &[&Item]) -> Vec<String> {
        v.iter().map(|i| i.0.clone()).collect()
    }

    #[test]
    fn pages_forward_and_backward() {
        let t = table(5);
        let (p, more) = t.page(None, 2, false, |_| true).unwrap();
        assert_eq!(ids(&p), ["i0", "i1"]);
        assert!(more);
        let (p, more) = t.page(Some("i3"), 2, false, |_| true).unwrap();
        assert_eq!(ids(&p), ["i4"]);
        assert!(!more);
        let (p, more) = t.page(Some("i3"), 2, true, |_| true).unwrap();
        assert_eq!(ids(&p), ["i2", "i1"]);
        assert!(more);
    }

    #[test]
    fn removed_id_still_works_as_cursor_and_unknown_does_not() {
        let mut t = table(4);
        assert!(t.remove("i1").is_some());
        let (p, _) = t.page(Some("i1"), 10, false, |_| true).unwrap();
        assert_eq!(ids(&p), ["i2", "i3"]);
        assert_eq!(
            t.page(Some("nope"), 10, false, |_| true).err(),
            Some(UnknownCursor)
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn filter_applies_before_limit() {
        let t = table(6);
        let (p, more) = t
            .page(None, 2, false, |i| i.0 != "i0" && i.0 != "i2")
            .unwrap();
        assert_eq!(ids(&p), ["i1", "i3"]);
        assert!(more);
    }
}
