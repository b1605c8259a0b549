//! Rollouts across the fleet: a new image version reaches the hosts wave by wave, at most
//! a few reboots per site at a time, and stops by itself when hosts roll back.
//!
//! Hosts never see each other: the driver moves the fleet by editing host documents in
//! the central database (`image.version`, then `image.hold` removed when a host's turn
//! comes) and reads each host's `status:` document (`ccnq_api::UpgradeStatus`) to
//! decide. [`model`] is the `rollout:<name>` document, [`waves`] who belongs to which
//! wave, [`fleet`] the host and status documents as the plan reads them, [`plan`] the
//! pure decision of each pass, [`driver`] the loop that reads, decides and writes. See
//! `docs/fleet.md`.

pub mod driver;
pub mod fleet;
pub mod model;
pub mod plan;
pub mod waves;

pub use driver::{Driver, DriverConfig, DriverError};
pub use fleet::{Fleet, HostView, StatusView};
pub use model::{validate, Invalid, Outcome, Progress, Rollout, RunState};
pub use plan::{plan, Event, HostWrite, Plan};
