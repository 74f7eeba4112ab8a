//! The README cannot drift: every command line it shows parses with the current binaries
//! (subcommands and flags exist), and the flows behind them run in `journey.rs`.

use bizcred_examples::Bins;

/// Splits a shell command line (single and double quotes, `#` comments).
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '#') => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

#[test]
fn every_readme_command_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let bins = Bins::locate().expect("binaries");
    let mut in_block = false;
    let mut checked = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let line = line.trim();
        if !in_block || !line.starts_with("bizcred-") {
            continue;
        }
        let words = split(line);
        let (bin, args) = words.split_first().expect("words");
        let out = bins
            .cmd(bin)
            .args(args)
            .arg("--help")
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Usage"),
            "README command does not parse: {line}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} README commands found");
    // The two commands at the top are the demo and the tests.
    let top: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take(2)
        .collect();
    assert!(
        top[0].starts_with("cargo run -p bizcred-examples --bin restaurant-journey"),
        "{top:?}"
    );
    assert!(top[1].starts_with("cargo test --workspace"), "{top:?}");
}
