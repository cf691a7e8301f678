//! Spec files, device tables and file_contexts (being written).
