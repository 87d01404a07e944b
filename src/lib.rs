//! ovsmesh: one declarative TOML topology → a multi-host Open vSwitch network for
//! containers.
//!
//! The code reads as a pipeline: TOML → validated [`topology::Topology`] →
//! per-host desired [`state::HostState`] ([`desired`]) → observed state →
//! settled against it ([`desired::settle`]) → typed diff ([`plan`]) → apply →
//! verify. Topology, desired state, settle and plan do no I/O. What is ovsmesh's
//! to touch is answered in one place, [`marks`].

pub mod check;
pub mod cli;
pub mod daemon;
pub mod desired;
pub mod engine;
pub mod graph;
pub mod host;
pub mod lab;
pub mod marks;
pub mod netlink;
pub mod netns;
pub mod ovs;
pub mod ovsdb;
pub mod plan;
pub mod plugin;
pub mod process;
pub mod runtime;
pub mod source;
pub mod state;
pub mod status;
pub mod topology;
