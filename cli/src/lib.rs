//! The parts of the `voicelake` tool that tests and other tools use as a library.

pub mod dlq;
pub mod html;
