//! Fleet features for MSPs that look after many clinics: signed rule bundles.
//!
//! | file | concern |
//! |---|---|
//! | `bundle.rs` | pure: the bundle format (tar + manifest), minisign signing and verification, every refusal |
//! | `update.rs` | shell: fetch over HTTPS, verify, unpack into the state directory, swap the catalog in through [`crate::policy::Live`], record the outcome |

pub mod bundle;
pub mod update;
