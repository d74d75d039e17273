//! An offline replica: a local redb store that the application reads and writes while
//! offline, synced both ways with a server through the replication protocol.
