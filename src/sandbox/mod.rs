//! placeholder until the sandbox branch lands
