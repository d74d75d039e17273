//! A mutatis node over HTTP as one end of a replication ([`mutatis_replication::Peer`]).
