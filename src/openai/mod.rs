//! placeholder until the client branch lands
