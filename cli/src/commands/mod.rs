//! One module per subcommand.

pub mod batch;
pub mod convert;
pub mod identify;
pub mod info;
pub mod inspect;
pub mod models;
pub mod tree;
pub mod verify;
