//! Integration tests of the codec: the smuggling corpus, and differentials against llhttp.

mod cases;
mod corpus;
