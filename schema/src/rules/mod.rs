//! The semantic rules the apiserver enforces and a JSON Schema cannot say.

pub mod names;
