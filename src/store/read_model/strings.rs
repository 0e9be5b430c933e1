//! The strings of one head, each kept once and named by a 4-byte symbol.
//!
//! The same ids repeat all over a snapshot (a user id is a user's key, every membership's
//! subject and an index key; a project id is the parent of everything in it; a handful of
//! role and status names cover 100,000 items), and each `String` costs its heap block and
//! 24 bytes on top of its text. Here a string is its text in one shared buffer plus 12 bytes.
//! Nothing is ever removed: a head lives until the next snapshot replaces it, and what
//! write-throughs leave behind is a few ids.

use std::hash::BuildHasher;
use std::num::NonZeroU32;

use hashbrown::HashTable;

/// A string of a [`Strings`]; `Option<Sym>` is 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Sym(NonZeroU32);

#[derive(Default)]
pub(super) struct Strings {
    text: String,
    /// Where each symbol's text is in `text`: start and length.
    spans: Vec<(u32, u32)>,
    /// Symbols by the hash of their text.
    table: HashTable<Sym>,
    hasher: std::hash::RandomState,
}

fn text_of<'a>(text: &'a str, spans: &[(u32, u32)], sym: Sym) -> &'a str {
    let (start, len) = spans[sym.0.get() as usize - 1];
    &text[start as usize..(start + len) as usize]
}

impl Strings {
    /// The symbol of `s`, added if new.
    pub(super) fn intern(&mut self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        let Strings {
            text,
            spans,
            table,
            hasher,
        } = self;
        if let Some(&sym) = table.find(hash, |&sym| text_of(text, spans, sym) == s) {
            return sym;
        }
        // A head holds far fewer than 4 GiB of text and 4 billion strings; past that the
        // model would be the wrong design anyway, so saturate rather than wrap.
        let start = u32::try_from(text.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        text.push_str(s);
        spans.push((start, len));
        let sym = Sym(NonZeroU32::MIN.saturating_add(spans.len() as u32 - 1));
        table.insert_unique(hash, sym, |&k| hasher.hash_one(text_of(text, spans, k)));
        sym
    }

    pub(super) fn intern_opt(&mut self, s: Option<&str>) -> Option<Sym> {
        s.map(|s| self.intern(s))
    }

    /// The symbol of `s` if it is held: a string never seen is on no item.
    pub(super) fn get(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&sym| text_of(&self.text, &self.spans, sym) == s)
            .copied()
    }

    pub(super) fn str(&self, sym: Sym) -> &str {
        text_of(&self.text, &self.spans, sym)
    }

    pub(super) fn opt(&self, sym: Option<Sym>) -> Option<&str> {
        sym.map(|s| self.str(s))
    }

    /// Gives back what the buffers grew into but do not use (a doubling buffer leaves up to
    /// half of it free).
    pub(super) fn shrink(&mut self) {
        self.text.shrink_to_fit();
        self.spans.shrink_to_fit();
    }

    /// How many strings are held, and the bytes their text, spans and table take.
    pub(super) fn footprint(&self) -> (usize, usize) {
        let bytes = self.text.capacity()
            + self.spans.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.table.capacity() * (std::mem::size_of::<Sym>() + 1);
        (self.spans.len(), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_is_kept_once_and_read_back() {
        let mut s = Strings::default();
        let a = s.intern("user-abc");
        let b = s.intern("proj_1");
        assert_ne!(a, b);
        assert_eq!(s.intern("user-abc"), a);
        assert_eq!(s.str(a), "user-abc");
        assert_eq!(s.str(b), "proj_1");
        assert_eq!(s.get("proj_1"), Some(b));
        assert_eq!(s.get("proj_2"), None);
        assert_eq!(s.text, "user-abcproj_1");
        let empty = s.intern("");
        assert_eq!(s.str(empty), "");
        assert_eq!(s.get(""), Some(empty));
    }

    #[test]
    fn many_strings_survive_the_table_growing() {
        let mut s = Strings::default();
        let syms: Vec<Sym> = (0..10_000).map(|i| s.intern(&format!("id-{i}"))).collect();
        for (i, sym) in syms.iter().enumerate() {
            assert_eq!(s.str(*sym), format!("id-{i}"));
            assert_eq!(s.get(&format!("id-{i}")), Some(*sym));
        }
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 4);
    }
}
