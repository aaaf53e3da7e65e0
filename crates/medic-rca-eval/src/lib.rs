//! `medic eval rca` and `medic bench rca`: the root-cause ranking of medic-rca
//! judged on the PetShop RCA dataset's layout and protocol, and on seeded
//! generated topologies with an injected root cause, cascades and noise.
#![forbid(unsafe_code)]

pub mod cli;
pub mod generate;
pub mod inject;
pub mod petshop;
pub mod traversal;
