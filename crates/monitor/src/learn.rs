//! Model synthesis.
