//! OpenAI chat completions: request, response and stream chunks.
