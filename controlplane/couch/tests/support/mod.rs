pub mod pouch;
pub mod replay;
