//! SFTP transfers (placeholder).
