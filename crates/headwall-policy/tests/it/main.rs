//! Integration tests for headwall-policy: the shipped example and property tests.

mod example;
mod props;
