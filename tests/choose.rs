//! The choosing commands' contract: one spelling per field (the `--json` one, `-` accepted),
//! nothing on stdout before an error, exit 2 and no file on a refusal.

mod common;

use common::{fixture, run};

#[test]
fn both_spellings_of_a_field_are_accepted_and_mean_the_same() {
    let a = run(&[
        "models",
        "resnet5*",
        "--pretrained",
        "--sort",
        "samples_per_sec",
        "--columns",
        "samples_per_sec,top1",
    ]);
    let b = run(&[
        "models",
        "resnet5*",
        "--pretrained",
        "--sort",
        "samples-per-sec",
        "--columns",
        "samples-per-sec,top1",
    ]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    let header = String::from_utf8_lossy(&a.stdout)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["model", "samples_per_sec", "top1"]
    );
}

#[test]
fn errors_print_nothing_on_stdout_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_dir = tmp.path().join("no/such/dir/chart.svg");
    let resnet = fixture("ckpt/test_resnet.f32.zip.pth");
    for args in [
        vec!["models", "--columns", "params,bogus"],
        vec!["models", "--sort", "speed"],
        vec![
            "models",
            "resnet5*",
            "--plot",
            missing_dir.to_str().unwrap(),
        ],
        // nothing to plot: no chart
        vec![
            "models",
            "no_such_*",
            "--pretrained",
            "--plot",
            tmp.path().join("empty.svg").to_str().unwrap(),
        ],
        vec![
            "inspect",
            resnet.to_str().unwrap(),
            "--tree",
            "--model",
            "no_such_model",
        ],
        vec!["info", "convnext_tiny.no_such_tag"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            o.stdout.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    assert!(!tmp.path().join("empty.svg").exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no partial file"
    );
}
