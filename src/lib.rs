//! openai-governor: access governance for OpenAI Platform organizations.

pub mod sandbox;
