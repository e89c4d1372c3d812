//! End-to-end test of the admin in a real Chromium (work in progress).
