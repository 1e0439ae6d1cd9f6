//! The coupled addition format lives in the codec (`crate::codec::coupled`); this path stays
//! for the length-generalisation modules that read it.

pub use crate::codec::coupled::*;
