//! The global allocator of every Rapport process: jemalloc.
//!
//! The hot paths allocate many small, short-lived objects (decoded rows,
//! protobuf messages, strings) across threads. Measured on the profile
//! export of 100,000 customers with 20 contacts each, in the same run:
//! 9,900–10,800 profiles/s on glibc malloc, 15,600–16,200 with jemalloc
//! (glibc spent a fifth of the time in `malloc_consolidate` and friends).
//! The unprefixed build replaces `malloc` for the C code in the process
//! too — SQLite allocates a good share of that; with only Rust's
//! allocations on jemalloc the export did not get faster. Declaring it
//! here, in the kit every service links, sets it once for all binaries.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
