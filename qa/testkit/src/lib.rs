//! Harnesses the tests of several crates share, so each real component is started the
//! same way everywhere: [`pouch`] runs a real pouchdb-server 4.2.0 (the CouchDB stand-in
//! of spec/couchdb.md) per test.

pub mod nspawn;
pub mod pouch;
