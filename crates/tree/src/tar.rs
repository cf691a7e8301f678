//! Tar archive sources (being written).
