//! The `classify` command as a user runs it.

mod common;

use std::process::Command;

fn classify(args: &[&str]) -> std::process::Output {
    common::shared();
    Command::new(env!("CARGO_BIN_EXE_imagenet-classroom"))
        .current_dir(common::repo())
        .arg("classify")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_lines_for_good_images_and_one_error_line_for_each_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "this is not a photo").unwrap();
    let eagle = common::shared_file("images/eagle.jpg");
    let bike = common::shared_file("images/fish-bike.jpg");
    let missing = dir.path().join("missing.jpg");

    let output = classify(&[
        "--model",
        "mobilenetv2",
        "--json",
        "--top",
        "3",
        eagle.to_str().unwrap(),
        text.to_str().unwrap(),
        missing.to_str().unwrap(),
        bike.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["image"], eagle.to_str().unwrap());
    assert_eq!(lines[0]["model"], "mobilenetv2");
    assert_eq!(lines[0]["top"].as_array().unwrap().len(), 3);
    assert_eq!(lines[0]["top"][0]["rank"], 1);
    assert_eq!(lines[0]["top"][0]["index"], 22);
    assert_eq!(lines[0]["top"][0]["label"], "bald eagle");
    assert!(lines[0]["millis"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["top"][0]["index"], 870);

    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(errors[0].contains("notes.jpg") && errors[0].contains("not an image"), "{stderr}");
    assert!(errors[1].contains("missing.jpg") && errors[1].contains("No such file"), "{stderr}");
}

#[test]
fn table_output_has_rank_percent_and_name() {
    let eagle = common::shared_file("images/eagle.jpg");
    let output = classify(&["--model", "models/mobilenetv2.toml", eagle.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 11, "{stdout}");
    assert!(lines[0].contains("eagle.jpg") && lines[0].contains("mobilenetv2"), "{stdout}");
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(first[0], "1");
    let percent: f32 = first[1].trim_end_matches('%').parse().unwrap();
    assert!((percent - 74.7).abs() < 5.0, "{stdout}");
    assert!(lines[1].contains("bald eagle"), "{stdout}");
}

#[test]
fn a_missing_model_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo().join("models/googlenet.toml"), dir.path().join("googlenet.toml"))
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_imagenet-classroom"))
        .args(["classify", "--models-dir", dir.path().to_str().unwrap(), "x.jpg"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("googlenet-12.onnx does not exist"), "{stderr}");
    assert!(stderr.contains("scripts/fetch-model"), "{stderr}");
}
