//! FreeSWITCH as the control plane sees it, without any I/O: [`render`] turns a validated
//! host into FreeSWITCH's host-specific files, [`plan`] works out the least disruptive
//! actions that take a running FreeSWITCH from one rendering to the next, and
//! [`fs_model`] is a model of FreeSWITCH's behaviour (derived from the recorded
//! transcripts) against which plans are checked. The applier that carries a plan out over
//! the event socket and systemd lives elsewhere.

pub mod fs_model;
pub mod plan;
pub mod render;

pub use plan::{
    plan, plan_from, Action, Cost, InForce, Plan, Snapshot, Step, SystemdJob, Target,
    FREESWITCH_UNIT,
};
pub use render::{render, Parts, ProfilePart, RenderError, RenderedTree, Rendering, Secrets};
