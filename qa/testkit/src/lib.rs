//! Harnesses the tests of several crates share, so each real component is started the
//! same way everywhere: [`pouch`] runs a real pouchdb-server 4.2.0 (the CouchDB stand-in
//! of spec/couchdb.md) per test, [`nspawn`] a real systemd, [`freeswitch`] a real
//! FreeSWITCH 1.11.2 as a unit of that systemd; [`peers`] unpacks the pinned builds of
//! ../shared/peers they run.

pub mod freeswitch;
pub mod nspawn;
pub mod peers;
pub mod pouch;
