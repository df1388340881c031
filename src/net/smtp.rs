//! SMTP submission client (to come).
