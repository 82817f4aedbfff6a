//! A short list that is usually one item (a topic's nodes, a user's connections): that item
//! kept inline, without an allocation of its own; a `Vec` beyond.

/// One item, or several; never none where it is kept (see [`OneOrMany::from_vec`]).
pub(crate) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::One(item) => std::slice::from_ref(item),
            Self::Many(items) => items,
        }
    }

    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(item) => vec![item],
            Self::Many(items) => items,
        }
    }

    /// The list, or `None` if it is empty.
    pub(crate) fn from_vec(mut items: Vec<T>) -> Option<Self> {
        match items.len() {
            0 => None,
            1 => items.pop().map(Self::One),
            _ => Some(Self::Many(items)),
        }
    }
}

impl<T: PartialEq + Clone> OneOrMany<T> {
    /// Adds `item` unless it is there already.
    pub(crate) fn add(&mut self, item: &T) {
        if self.as_slice().contains(item) {
            return;
        }
        match self {
            Self::One(first) => *self = Self::Many(vec![first.clone(), item.clone()]),
            Self::Many(items) => items.push(item.clone()),
        }
    }

    /// Removes `item`; returns whether none is left.
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        match self {
            Self::One(only) => only == item,
            Self::Many(items) => {
                items.retain(|i| i != item);
                items.is_empty()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OneOrMany;

    #[test]
    fn one_then_many_then_none() {
        let mut list = OneOrMany::One(1);
        list.add(&1);
        assert_eq!(list.as_slice(), [1]);
        list.add(&2);
        assert_eq!(list.as_slice(), [1, 2]);
        assert!(!list.remove(&1));
        assert!(list.remove(&2));
        assert!(OneOrMany::<u8>::from_vec(Vec::new()).is_none());
        assert!(matches!(OneOrMany::from_vec(vec![7]), Some(OneOrMany::One(7))));
        assert_eq!(OneOrMany::from_vec(vec![1, 2]).unwrap().into_vec(), [1, 2]);
    }
}
