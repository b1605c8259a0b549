//! `ccnq-test-couchdb`: the tests' real CouchDB 3.4.3 ([`ccnq_testkit::couchdb`]) for the
//! shell harnesses (the VM tests' central database, `make demo`), so that they start it
//! exactly as the Rust tests do instead of keeping a second recipe.
//!
//! Prints one line, `<url> <admin> <password>`, once CouchDB answers `_up`, then runs
//! until it is killed; the harness's watcher stops CouchDB when this process ends.

use ccnq_testkit::couchdb::CouchServer;
use std::io::Write;

fn main() {
    let tag = std::env::args().nth(1).unwrap_or_else(|| "cli".into());
    let server = CouchServer::start(&tag);
    let (admin, password) = server.admin();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {admin} {password}", server.url()).expect("write to stdout");
    out.flush().expect("flush stdout");
    drop(out);
    loop {
        std::thread::park();
    }
}
