//! A seeded simulation of replication and leader election (see `sim/`): placeholder until
//! the model lands.
