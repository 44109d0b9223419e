//! Named profiles (`config set-context|use-context|get-contexts`), `login` storing a token per profile
//! (mode 0600), and the profile's token going out with later calls.

use crate::fakes::*;

#[tokio::test]
async fn login_stores_a_private_token_in_the_current_context_and_later_calls_use_it() {
    let fake = five_sessions();
    let server = serve(fake.clone()).await;
    let dir = std::env::temp_dir().join(format!("sessionctl-profiles-{}", std::process::id()));
    let config = dir.join("sessionctl.toml");
    let config = config.to_str().expect("UTF-8 path");

    let ran = run_answering(&server, &["--config", config, "config", "set-context", "lab"], None).await;
    ran.result.expect("set-context");
    let ran = run_answering(&server, &["--config", config, "config", "use-context", "lab"], None).await;
    ran.result.expect("use-context");
    assert_eq!(ran.out, "Switched to context \"lab\".\n");
    let ran = run_answering(&server, &["--config", config, "config", "get-contexts"], None).await;
    ran.result.expect("get-contexts");
    let row = ran.out.lines().nth(1).expect("a row");
    assert!(
        row.starts_with('*') && row.contains("lab") && row.contains(&server),
        "{}",
        ran.out
    );
    let ran = run_answering(&server, &["--config", config, "config", "use-context", "prod"], None).await;
    assert_eq!(
        ran.result.expect_err("no such context").exit_code(),
        sessionctl::EXIT_USAGE
    );

    // Without a terminal or --token-stdin, login cannot ask.
    let ran = run_answering(&server, &["--config", config, "login"], None).await;
    assert_eq!(ran.result.expect_err("cannot ask").exit_code(), sessionctl::EXIT_USAGE);
    let ran = run_answering(
        &server,
        &["--config", config, "login", "--token-stdin"],
        Some("s3cret\n"),
    )
    .await;
    ran.result.expect("login");
    let token_file = dir.join("tokens").join("lab.token");
    assert!(ran.out.contains(&token_file.display().to_string()), "{}", ran.out);
    assert_eq!(std::fs::read_to_string(&token_file).expect("token"), "s3cret\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token is readable by its owner only");
        let mode = std::fs::metadata(config).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The next call takes the token from the profile.
    fake.seen.lock().expect("seen lock").authorization.clear();
    run_to_string(&server, &["--config", config, "stats"])
        .await
        .expect("stats");
    let seen = fake.seen.lock().expect("seen lock").authorization.clone();
    assert!(seen.contains(&Some("Bearer s3cret".to_owned())), "{seen:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn completion_prints_a_script_without_asking_any_server() {
    let dead = "http://127.0.0.1:9";
    for shell in ["bash", "zsh", "fish"] {
        let out = run_to_string(dead, &["completion", shell]).await.expect("completion");
        assert!(out.contains("sessionctl") && out.contains("sessions"), "{shell}: {out}");
    }
}
