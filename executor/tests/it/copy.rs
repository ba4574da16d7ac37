//! COPY and mkdir.
