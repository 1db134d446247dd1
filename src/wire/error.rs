//! Error bodies and in-stream error events, for every dialect: the one place they are written.
