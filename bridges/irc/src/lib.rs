//! The IRC module of Passerelle: every Matrix user their own IRC connection,
//! every IRC user a ghost. Work in progress: the pieces land one by one.
pub mod autoreply;
pub mod config;
pub mod conn;
pub mod format;
pub mod ids;
pub mod module;
pub mod msgids;
pub mod nick;
pub mod server;
pub mod split;

pub use module::IrcModule;
