//! The tamper suite: real segment files are changed with SQLite (and by hand) the way an
//! attacker or a bad disk would, and `daftari verify` must exit 1 and name the segment and the
//! sequence number at fault. It runs once per segment layout, each over its own fixture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod v1 {
    const FORMAT: u32 = 1;
    include!("suite.rs");
}

mod v2 {
    const FORMAT: u32 = 2;
    include!("suite.rs");
    include!("frames.rs");
}
