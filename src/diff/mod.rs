//! Stage 3 — match old and new activities and derive per-state changes.
