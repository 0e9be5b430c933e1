//! What a head takes on the heap, logged when a snapshot is loaded: the figures operators and
//! the access benchmark read the model's size from.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;

use super::{Head, ItemKind, PersonKey, Stored, Sym};

/// What a head's parts take on the heap, by the sizes of what they hold (the allocator's own
/// overhead on top is not counted).
pub(super) struct Footprint {
    pub(super) items: usize,
    pub(super) strings: usize,
    /// The items' trimmed `data` text.
    pub(super) data: usize,
    pub(super) strings_bytes: usize,
    pub(super) slots: usize,
    pub(super) indexes: usize,
}

impl Head {
    pub(super) fn footprint(&self) -> Footprint {
        let (strings, strings_bytes) = self.strings.footprint();
        // A hashbrown table keeps a control byte per bucket besides the entry.
        let lists = |m: &HashMap<Sym, Vec<u32>>| {
            m.capacity() * (size_of::<(Sym, Vec<u32>)>() + 1)
                + m.values().map(|v| v.capacity() * 4).sum::<usize>()
        };
        let ordered = |m: &BTreeMap<Box<str>, u32>| {
            m.keys()
                .map(|k| size_of::<(Box<str>, u32)>() + k.len())
                .sum::<usize>()
        };
        let by_order = self.owners_in_order.keys().map(|(e, u)| {
            size_of::<(PersonKey, u32)>()
                + e.as_ref().map_or(0, String::len)
                + u.as_ref().map_or(0, String::len)
        });
        let indexes = self.by_key.capacity() * (size_of::<((ItemKind, Sym), u32)>() + 1)
            + lists(&self.by_subject)
            + lists(&self.by_parent)
            + lists(&self.by_email)
            + lists(&self.invites_by_project)
            + ordered(&self.owners)
            + ordered(&self.users)
            + ordered(&self.projects)
            + by_order.sum::<usize>()
            + self.org_roles.len() * 4
            + self.free.capacity() * 4;
        Footprint {
            items: self.by_key.len(),
            strings,
            data: self.slots.iter().flatten().map(|i| i.data.len()).sum(),
            strings_bytes,
            slots: self.slots.capacity() * size_of::<Option<Stored>>(),
            indexes,
        }
    }
}
