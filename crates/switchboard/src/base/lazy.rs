//! A rarely used part of a structure, allocated at its first use.

use std::sync::OnceLock;

/// Until its first use it costs 16 bytes, not its size (a `Mutex<HashMap>` is 56): for the
/// parts of a connection that most connections never use.
pub(crate) struct Lazy<T>(OnceLock<Box<T>>);

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T> Lazy<T> {
    /// The value, if it was ever used.
    pub(crate) fn get(&self) -> Option<&T> {
        self.0.get().map(|b| &**b)
    }
}

impl<T: Default> std::ops::Deref for Lazy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.get_or_init(Box::default)
    }
}
