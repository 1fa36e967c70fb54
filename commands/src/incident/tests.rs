//! Unit and database tests of the incident feature.
