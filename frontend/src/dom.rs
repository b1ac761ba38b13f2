//! The rows of the page's two lists (the messages, the outbox), drawn by hand on the DOM.
//!
//! A list may hold hundreds of rows, and a view written with `view!` is compiled into code of its
//! own for every shape it can take (made, updated, moved, removed): the lists' rows were a seventh
//! of the page's weight. Drawn here instead, a row is a few calls that make its elements once; it
//! has no reactive parts of its own (what changes in it, the list changes by hand, and its buttons
//! are answered by one listener on the list), and [`Keyed`] keeps the rows in the order of the
//! list's items, making each item's row once and moving or removing it as the items change.

use leptos::prelude::document;
use wasm_bindgen::UnwrapThrowExt as _;
use web_sys::{Element, Node};

/// An element `tag` with these attributes and children (in order).
pub(crate) fn element(tag: &str, attributes: &[(&str, &str)], children: &[&Node]) -> Element {
    let element = document().create_element(tag).unwrap_throw();
    for (name, value) in attributes {
        let _ = element.set_attribute(name, value);
    }
    for child in children {
        let _ = element.append_child(child);
    }
    element
}

/// A text node.
pub(crate) fn text(text: &str) -> Node {
    document().create_text_node(text).into()
}

/// The element `event` happened in or under that matches `selector` (a button, its row).
pub(crate) fn closest(event: &web_sys::Event, selector: &str) -> Option<Element> {
    use wasm_bindgen::JsCast as _;
    event
        .target()?
        .dyn_into::<Element>()
        .ok()?
        .closest(selector)
        .ok()
        .flatten()
}

/// One item's row (or rows), and what the list keeps to change them later.
#[derive(Debug)]
pub(crate) struct Drawn<V> {
    /// Its nodes, in order.
    pub(crate) nodes: Vec<Node>,
    /// What the list keeps of it.
    pub(crate) kept: V,
}

/// The children of `parent`, one item's nodes after another in the order of the items, each
/// item's made once (under its key) and moved or removed as the items change.
#[derive(Debug)]
pub(crate) struct Keyed<K, V> {
    parent: Element,
    shown: Vec<(K, Drawn<V>)>,
}

impl<K: PartialEq + Clone, V> Keyed<K, V> {
    /// An empty list in `parent` (which has no other children).
    pub(crate) fn new(parent: Element) -> Self {
        Self {
            parent,
            shown: Vec::new(),
        }
    }

    /// Whether this list draws into `parent`.
    pub(crate) fn is_in(&self, parent: &Element) -> bool {
        self.parent == *parent
    }

    /// What is shown, in order.
    pub(crate) fn shown(&self) -> impl Iterator<Item = &(K, Drawn<V>)> {
        self.shown.iter()
    }

    /// Shows `items`: those whose key was shown keep their nodes (moved only when their order
    /// changed), new ones are made by `make`, and those gone are removed. Items come and go at
    /// the ends and rarely in between, so this walks both lists once; an item moved costs a
    /// search.
    pub(crate) fn update<T>(
        &mut self,
        items: &[T],
        key: impl Fn(&T) -> K,
        make: impl Fn(&T) -> Drawn<V>,
    ) {
        let keys: Vec<K> = items.iter().map(key).collect();
        let mut old: Vec<Option<(K, Drawn<V>)>> = std::mem::take(&mut self.shown)
            .into_iter()
            .map(Some)
            .collect();
        let mut next = Vec::with_capacity(items.len());
        let mut at = 0;
        for (i, (item, key)) in items.iter().zip(keys.iter()).enumerate() {
            while old.get(at).is_some_and(Option::is_none) {
                at += 1;
            }
            let found = old[at..]
                .iter()
                .position(|shown| shown.as_ref().is_some_and(|(shown, _)| shown == key))
                .map(|offset| at + offset);
            if let Some(found) = found {
                // Those before it that no item left has are gone: removed, not passed over.
                for skipped in &mut old[at..found] {
                    if skipped
                        .as_ref()
                        .is_some_and(|(shown, _)| !keys[i + 1..].contains(shown))
                        && let Some((_, drawn)) = skipped.take()
                    {
                        self.remove(&drawn);
                    }
                }
            }
            let in_place = found.is_some_and(|found| old[at..found].iter().all(Option::is_none));
            let drawn = match found.and_then(|found| old[found].take()) {
                Some((_, drawn)) if in_place => {
                    at = found.map_or(at, |found| found + 1);
                    drawn
                }
                moved => {
                    let drawn = moved.map_or_else(|| make(item), |(_, drawn)| drawn);
                    let before = old[at..]
                        .iter()
                        .flatten()
                        .find_map(|(_, drawn)| drawn.nodes.first());
                    for node in &drawn.nodes {
                        let _ = self.parent.insert_before(node, before);
                    }
                    drawn
                }
            };
            next.push((key.clone(), drawn));
        }
        for (_, drawn) in old.into_iter().flatten() {
            self.remove(&drawn);
        }
        self.shown = next;
    }

    fn remove(&self, drawn: &Drawn<V>) {
        for node in &drawn.nodes {
            let _ = self.parent.remove_child(node);
        }
    }
}
