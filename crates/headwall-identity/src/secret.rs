//! Fixed-size secret bytes that are overwritten with zeros when dropped.

/// 32 secret bytes, zeroed on drop, with no `Debug`.
///
/// Deliberately not `Clone` or `Copy`, so the only copies are the ones the compiler makes when
/// moving it (best effort, as with any zeroize-on-drop type without pinning).
pub(crate) struct SecretBytes(pub(crate) [u8; 32]);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.fill(0);
        // `unsafe_code` is forbidden, so no `write_volatile`: `black_box` makes the compiler
        // treat the zeroed bytes as read, so the stores above cannot be elided as dead.
        std::hint::black_box(&mut self.0);
    }
}
