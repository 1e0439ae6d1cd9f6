//! Layers with forward and backward side by side.
