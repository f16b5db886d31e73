//! The shared harness lives in `incd-fakes` (`incd_fakes::harness`), used by the tests and the
//! benchmarks alike; this module only re-exports it so the tests keep `mod common;`.
#![allow(unused_imports)]

pub use incd_fakes::harness::*;
