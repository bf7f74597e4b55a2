//! holdfast library.
