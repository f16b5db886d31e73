//! Link the `incd` binary as a position-dependent executable on Linux.
//!
//! A position-independent executable is relocated when it starts: the dynamic loader reads
//! ~42,000 relocations (1 MB of `.rela.dyn`) and writes every page of `.data.rel.ro` (1.2 MB:
//! vtables, the time-zone tables, the word lists), and both stay resident for the life of the
//! process: about 2 MB of an idle incd's 12-13 MB. Linked at a fixed address there is nothing to
//! relocate; those pages are only read, and only the ones used. The libraries, heap and stacks
//! are still placed at random addresses; only the executable's own image is not.

fn main() {
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if linux {
        println!("cargo:rustc-link-arg-bin=incd=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
