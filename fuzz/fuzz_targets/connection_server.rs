//! Fuzz input -> a server-role `Connection` fed in chunks, echoing messages back; see
//! `ferrosocket_fuzz::conn` for the input layout and the invariants.
#![no_main]

use ferrosocket_proto::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferrosocket_fuzz::conn::run(Role::Server, data));
