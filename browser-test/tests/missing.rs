//! Without a browser the tests skip loudly, except under CI, and a variable that names a file
//! that is not there is always an error. One test in its own process: it changes the
//! environment.

use bizcred_browser_test::{Browser, Error};

#[tokio::test]
async fn a_missing_browser_skips_except_under_ci() {
    std::env::remove_var("BIZCRED_CHROMIUM");

    std::env::set_var("BIZCRED_CHROMEDRIVER", "/nonexistent/chromedriver");
    std::env::remove_var("CI");
    match Browser::start().await {
        Err(Error::Missing { what, detail }) => {
            assert_eq!(what, "chromedriver");
            assert!(detail.contains("BIZCRED_CHROMEDRIVER"), "{detail}");
        }
        other => panic!("a wrong BIZCRED_CHROMEDRIVER: {other:?}"),
    }

    std::env::remove_var("BIZCRED_CHROMEDRIVER");
    std::env::set_var("PATH", "/nonexistent");
    assert!(
        matches!(Browser::start().await, Ok(None)),
        "no chromedriver outside CI is a skip"
    );

    std::env::set_var("CI", "true");
    match Browser::start().await {
        Err(Error::Missing { what, .. }) => assert_eq!(what, "chromedriver"),
        other => panic!("no chromedriver under CI=true: {other:?}"),
    }
}
