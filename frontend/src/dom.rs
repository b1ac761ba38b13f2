//! How the page draws itself: elements made by hand on the DOM, each part once, and kept up to
//! date in place by Leptos's effects.
//!
//! A view written with Leptos's `view!` is compiled into code of its own for every shape it can
//! take (made, updated, moved, removed), and the page paid for each of its views that way: they
//! were nearly half its weight (`docs/performance.md`). Drawn here instead, a part is a few calls
//! that make its elements ([`h`]), and an effect that changes what changes in it (a text, an
//! attribute); a part that comes and goes is put in or taken out of its [`Slot`]. The rows of a
//! list have no effects of their own: [`Keyed`] keeps them in the order of the list's items,
//! making each item's rows once and moving or removing them as the items change, the list
//! changes what changes in them, and one listener on the list answers their buttons.

use leptos::prelude::document;
use wasm_bindgen::{JsCast as _, UnwrapThrowExt as _, closure::Closure};
use web_sys::{Element, Node};

/// An element being made: `h("p").class("note").text("Saved.")`, then `.el()`.
#[derive(Debug)]
pub(crate) struct H(Element);

/// Starts an element `tag`.
pub(crate) fn h(tag: &str) -> H {
    H(document().create_element(tag).unwrap_throw())
}

impl H {
    /// With the attribute `name` set to `value`.
    pub(crate) fn attr(self, name: &str, value: &str) -> Self {
        let _ = self.0.set_attribute(name, value);
        self
    }

    /// With this `class` attribute.
    pub(crate) fn class(self, class: &str) -> Self {
        self.attr("class", class)
    }

    /// With `child` appended.
    pub(crate) fn child(self, child: &Node) -> Self {
        let _ = self.0.append_child(child);
        self
    }

    /// With a text appended.
    pub(crate) fn text(self, words: &str) -> Self {
        self.child(&text(words))
    }

    /// Answering `event` with `listener`, for as long as the page is open.
    pub(crate) fn on(self, event: &str, listener: impl FnMut(web_sys::Event) + 'static) -> Self {
        on(&self.0, event, listener);
        self
    }

    /// The element made.
    pub(crate) fn el(self) -> Element {
        self.0
    }
}

/// `target` answers `event` with `listener`, for as long as the page is open (the page's parts
/// are made once and stay: the rows of its lists are answered by their list).
pub(crate) fn on(
    target: &web_sys::EventTarget,
    event: &str,
    listener: impl FnMut(web_sys::Event) + 'static,
) {
    let listener = Closure::<dyn FnMut(web_sys::Event)>::new(listener);
    let _ = target.add_event_listener_with_callback(event, listener.as_ref().unchecked_ref());
    listener.forget();
}

/// A text node.
pub(crate) fn text(text: &str) -> Node {
    document().create_text_node(text).into()
}

/// A place among an element's children where a part is shown or not: shown, the part is put
/// there (made once, and changed in place while shown); not shown, it is taken out of the page.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    parent: Element,
    marker: Node,
}

impl Slot {
    /// A place after `parent`'s children so far.
    pub(crate) fn new(parent: &Element) -> Self {
        let marker: Node = document().create_comment("").into();
        let _ = parent.append_child(&marker);
        Self {
            parent: parent.clone(),
            marker,
        }
    }

    /// Puts `part` in its place, or takes it out.
    pub(crate) fn show(&self, part: &Element, shown: bool) {
        if !shown {
            part.remove();
        } else if part.parent_node().is_none() {
            let _ = self.parent.insert_before(part, Some(&self.marker));
        }
    }
}

/// The element `event` happened in or under that matches `selector` (a button, its row).
pub(crate) fn closest(event: &web_sys::Event, selector: &str) -> Option<Element> {
    event
        .target()?
        .dyn_into::<Element>()
        .ok()?
        .closest(selector)
        .ok()
        .flatten()
}

/// The button matching `selector` that `event` happened on or in, and the row (`li`) it is in:
/// what a list's one listener answers for its rows.
pub(crate) fn row_button(event: &web_sys::Event, selector: &str) -> Option<(Element, Element)> {
    let button = closest(event, selector)?;
    let row = button.closest("li").ok().flatten()?;
    Some((button, row))
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

impl<K: PartialEq, V> Keyed<K, V> {
    /// An empty list in `parent` (which has no other children).
    pub(crate) fn new(parent: Element) -> Self {
        Self {
            parent,
            shown: Vec::new(),
        }
    }

    /// What is shown, in order.
    pub(crate) fn shown(&self) -> impl Iterator<Item = &(K, Drawn<V>)> {
        self.shown.iter()
    }

    /// Shows `items`: those whose key was shown keep their nodes (moved only when their order
    /// changed), new ones are made by `make`, and those gone are removed. Items come and go at
    /// the ends and rarely in between, so this walks both lists once, an item kept in place
    /// costing one comparison; a new or moved one costs a search of the rows not yet passed.
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
        let mut drawn = Vec::with_capacity(items.len());
        let mut at = 0;
        for (i, (item, key)) in items.iter().zip(&keys).enumerate() {
            while old.get(at).is_some_and(Option::is_none) {
                at += 1;
            }
            let found = old[at..]
                .iter()
                .position(|shown| shown.as_ref().is_some_and(|(shown, _)| shown == key))
                .map(|offset| at + offset);
            // Kept: in place when every row before it that is still shown is gone (removed
            // now, not passed over), else moved.
            let kept = found.and_then(|found| {
                for skipped in &mut old[at..found] {
                    if skipped
                        .as_ref()
                        .is_some_and(|(shown, _)| !keys[i + 1..].contains(shown))
                        && let Some((_, gone)) = skipped.take()
                    {
                        self.remove(&gone);
                    }
                }
                let in_place = old[at..found].iter().all(Option::is_none);
                if in_place {
                    at = found + 1;
                }
                old[found].take().map(|(_, kept)| (kept, in_place))
            });
            drawn.push(match kept {
                Some((kept, true)) => kept,
                kept => {
                    let placed = kept.map_or_else(|| make(item), |(moved, _)| moved);
                    let before = old[at..]
                        .iter()
                        .flatten()
                        .find_map(|(_, shown)| shown.nodes.first());
                    for node in &placed.nodes {
                        let _ = self.parent.insert_before(node, before);
                    }
                    placed
                }
            });
        }
        for (_, gone) in old.into_iter().flatten() {
            self.remove(&gone);
        }
        self.shown = keys.into_iter().zip(drawn).collect();
    }

    fn remove(&self, drawn: &Drawn<V>) {
        for node in &drawn.nodes {
            let _ = self.parent.remove_child(node);
        }
    }
}

/// The keyed list in a real browser's DOM (headless Chromium, `wasm-bindgen-test`).
#[cfg(all(test, target_arch = "wasm32"))]
// Tests: a failed expectation is the failure (clippy knows `#[test]`s, not these).
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod browser {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    /// Items are letters; an uppercase item is drawn as two nodes (a block of rows).
    fn draw(item: &char) -> Drawn<()> {
        let rows = if item.is_uppercase() { 2 } else { 1 };
        let nodes = (0..rows)
            .map(|row| {
                h("li")
                    .attr("data-item", &format!("{item}{row}"))
                    .el()
                    .into()
            })
            .collect();
        Drawn { nodes, kept: () }
    }

    /// The list's children, by the item and row each was drawn for.
    fn children(parent: &Element) -> Vec<String> {
        let children = parent.children();
        (0..children.length())
            .filter_map(|i| children.item(i))
            .map(|child| child.get_attribute("data-item").unwrap_or_default())
            .collect()
    }

    /// The nodes drawn for `item`, as the page holds them now.
    fn nodes_of(parent: &Element, item: char) -> Vec<Node> {
        let children = parent.children();
        (0..children.length())
            .filter_map(|i| children.item(i))
            .filter(|child| {
                child
                    .get_attribute("data-item")
                    .is_some_and(|drawn| drawn.starts_with(item))
            })
            .map(|child| child.unchecked_into())
            .collect()
    }

    #[wasm_bindgen_test]
    fn rows_follow_their_items_each_drawn_once_and_moved_only_when_out_of_order() {
        let parent = h("ol").el();
        let mut list = Keyed::new(parent.clone());
        let show = |list: &mut Keyed<char, ()>, items: &str| {
            let items: Vec<char> = items.chars().collect();
            list.update(&items, |item| *item, draw);
            children(&parent)
        };
        assert_eq!(show(&mut list, "bc"), ["b0", "c0"]);
        let b = nodes_of(&parent, 'b');
        // New at the top (a block of two rows), at the end, and in between.
        assert_eq!(show(&mut list, "Abc"), ["A0", "A1", "b0", "c0"]);
        assert_eq!(show(&mut list, "Abcd"), ["A0", "A1", "b0", "c0", "d0"]);
        assert_eq!(
            show(&mut list, "AbEcd"),
            ["A0", "A1", "b0", "E0", "E1", "c0", "d0"]
        );
        // Gone: from the end, the top, in between.
        assert_eq!(
            show(&mut list, "AbEc"),
            ["A0", "A1", "b0", "E0", "E1", "c0"]
        );
        assert_eq!(show(&mut list, "bEc"), ["b0", "E0", "E1", "c0"]);
        assert_eq!(show(&mut list, "bc"), ["b0", "c0"]);
        // Kept rows are the same nodes, not drawn again.
        assert_eq!(nodes_of(&parent, 'b'), b);
        // Out of order: moved; gone and new at once; emptied.
        assert_eq!(show(&mut list, "cb"), ["c0", "b0"]);
        assert_eq!(nodes_of(&parent, 'b'), b, "moved, not drawn again");
        assert_eq!(show(&mut list, "xbFc"), ["x0", "b0", "F0", "F1", "c0"]);
        assert_eq!(show(&mut list, "cFbx"), ["c0", "F0", "F1", "b0", "x0"]);
        assert_eq!(show(&mut list, ""), Vec::<String>::new());
        assert_eq!(show(&mut list, "ab"), ["a0", "b0"]);
        assert_ne!(nodes_of(&parent, 'b'), b, "drawn again once it was gone");
    }

    #[wasm_bindgen_test]
    fn a_part_shown_in_its_slot_is_put_in_its_place_and_taken_out_when_not() {
        let parent = h("div").el();
        let part = |name: &str| h("p").attr("data-item", name).el();
        let _ = parent.append_child(&part("first"));
        let slot = Slot::new(&parent);
        let _ = parent.append_child(&part("last"));
        let (note, other) = (part("note"), part("other"));
        slot.show(&note, true);
        assert_eq!(children(&parent), ["first", "note", "last"]);
        // Shown again: not moved or doubled; a second part goes after the first.
        slot.show(&note, true);
        slot.show(&other, true);
        assert_eq!(children(&parent), ["first", "note", "other", "last"]);
        slot.show(&note, false);
        assert_eq!(children(&parent), ["first", "other", "last"]);
        slot.show(&note, false);
        slot.show(&other, false);
        assert_eq!(children(&parent), ["first", "last"]);
        slot.show(&note, true);
        assert_eq!(children(&parent), ["first", "note", "last"]);
    }
}
