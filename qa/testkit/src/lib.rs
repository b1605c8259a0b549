//! Harnesses the tests of several crates share, so each real component is started the
//! same way everywhere: [`couchdb`] runs a real Apache CouchDB 3.4.3 (the server the
//! control plane is written for, spec/couchdb.md), [`pouch`] a pouchdb-server 4.2.0 kept
//! only as a fault injector for what CouchDB cannot be made to do, [`nspawn`] a real
//! systemd, [`freeswitch`] a real FreeSWITCH 1.11.2 as a unit of that systemd, [`nginx`]
//! a real static web server (an update repository or a mirror); [`peers`] unpacks the
//! pinned builds of ../shared/peers they run.

pub mod couchdb;
pub mod freeswitch;
pub mod nginx;
pub mod nspawn;
pub mod peers;
pub mod pouch;

/// A loopback TCP port free now (the kernel's pick, released at once for the server
/// that will bind it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}
