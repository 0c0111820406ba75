//! Fuzz target: arbitrary bytes as dnsmasq and Kea lease files (host names pupils' devices
//! choose) and as a kernel neighbour-table reply must never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schoolgate_agent::fuzz::leases_and_neighbours(data));
