//! Harness for starting real holdfast nodes in tests.
