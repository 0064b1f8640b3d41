//! Compiles the cluster-mode end-to-end suite (`tests/blackbox/cluster_main.rs`)
//! only when the PostgreSQL and Redis it needs are named, by
//! `MOMENT_TEST_POSTGRES` and `MOMENT_TEST_REDIS`; and the console's browser
//! tests (`tests/blackbox/console_browser.rs`) only when a chromedriver is
//! named by `MOMENT_TEST_CHROMEDRIVER`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cluster_tests)");
    println!("cargo::rerun-if-env-changed=MOMENT_TEST_POSTGRES");
    println!("cargo::rerun-if-env-changed=MOMENT_TEST_REDIS");
    println!("cargo::rustc-check-cfg=cfg(browser_tests)");
    println!("cargo::rerun-if-env-changed=MOMENT_TEST_CHROMEDRIVER");
    println!("cargo::rerun-if-changed=build.rs");
    let named = |var| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    if named("MOMENT_TEST_POSTGRES") && named("MOMENT_TEST_REDIS") {
        println!("cargo::rustc-cfg=cluster_tests");
    }
    if named("MOMENT_TEST_CHROMEDRIVER") {
        println!("cargo::rustc-cfg=browser_tests");
    }
}
