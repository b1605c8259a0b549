//! Harnesses the tests of several crates share, so each real component is started the
//! same way everywhere: [`couchdb`] runs a real Apache CouchDB 3.4.3 (the server the
//! control plane is written for, spec/couchdb.md), [`pouch`] a pouchdb-server 4.2.0 kept
//! only as a fault injector for what CouchDB cannot be made to do, [`nspawn`] a real
//! systemd, [`freeswitch`] a real FreeSWITCH 1.11.2 as a unit of that systemd; [`peers`]
//! unpacks the pinned builds of ../shared/peers they run.

pub mod couchdb;
pub mod freeswitch;
pub mod nspawn;
pub mod peers;
pub mod pouch;
