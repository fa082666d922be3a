//! The test runner's protocol for the tests with a `main` of their own (`crash`,
//! `fsync_failure`, whose binary is also the child process): `--list` lists the one test,
//! a name filter that does not match runs nothing, and the summary line says what happened.

/// How one run of a harness-less test ended.
pub enum Outcome {
    Passed,
    /// Not run here, with the reason (never under CI, where the test asserts instead).
    Ignored(&'static str),
}

/// Whether the runner's arguments select the test `name`: its filters (all of them when
/// none is given) and `--skip`, with `--exact`; a value given to an option in the next
/// argument is no filter.
fn wanted(name: &str, args: &[String]) -> bool {
    const VALUED: &[&str] = &["--test-threads", "--format", "--color", "--logfile", "-Z"];
    let exact = args.iter().any(|a| a == "--exact");
    let matches = |f: &str| if exact { name == f } else { name.contains(f) };
    let (mut filters, mut skipped) = (Vec::new(), false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--skip" {
            skipped |= it.next().is_some_and(|f| matches(f));
        } else if VALUED.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a.as_str());
        }
    }
    !skipped && (filters.is_empty() || filters.iter().any(|f| matches(f)))
}

/// Runs `test` named `name` as `cargo test` would run a `#[test]` of that name.
pub fn run(name: &str, test: impl FnOnce() -> Outcome) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{name}: test");
        return;
    }
    if !wanted(name, &args) {
        println!(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n"
        );
        return;
    }
    println!("\nrunning 1 test");
    match test() {
        Outcome::Passed => {
            println!(
                "test {name} ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n"
            );
        }
        Outcome::Ignored(why) => {
            println!(
                "test {name} ... ignored, {why}\n\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\n"
            );
        }
    }
}
