//! Hash-indexed directories (being written).
