//! The CS-MCA recipe, written once: [`ops::Ops`] is the seam both engines implement,
//! [`decompose`] splits detail layers into cartoon and texture, [`fuse`] strings the stages of a
//! fusion together.

pub(crate) mod base_rule;
pub mod baselines;
pub mod decompose;
pub mod fuse;
pub mod ops;
