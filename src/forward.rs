//! Port forwarding (placeholder).
