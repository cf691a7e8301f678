//! Extent trees (being written).
