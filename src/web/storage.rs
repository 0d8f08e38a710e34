//! What is kept on disk in the uploads folder: each accepted photo under
//! `<login>-<original name>.<real extension>`, one small JSON file per result
//! in the hidden `.results` folder (so memory stays flat however many
//! results there are), and `results.jsonl`, one line per classification.
//! Files appear whole or not at all: each is written under a temporary
//! name and then linked or renamed into place.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::login::is_hidden_format;
use crate::decode::Format;
use crate::model::Prediction;

/// The folder where results are kept, inside the uploads folder.
const RESULTS_FOLDER: &str = ".results";
/// The results log, inside the uploads folder.
pub const RESULTS_LOG: &str = "results.jsonl";
/// Longest file name most file systems take, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// How many stored copies of one name we try before giving up.
const MAX_COPIES: u32 = 100_000;

/// The uploads folder.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    results: PathBuf,
    /// Serialises appends to the results log, so lines never interleave.
    log_lock: Mutex<()>,
}

/// One of the likeliest classes, as a result keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPrediction {
    pub rank: usize,
    pub index: usize,
    pub label: String,
    pub names: String,
    pub probability: f32,
}

impl From<&Prediction> for StoredPrediction {
    fn from(p: &Prediction) -> StoredPrediction {
        StoredPrediction {
            rank: p.rank,
            index: p.index,
            label: p.label.clone(),
            names: p.names.clone(),
            probability: p.probability,
        }
    }
}

/// One classified upload, as its result page shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRecord {
    pub id: String,
    pub time: String,
    pub login: String,
    /// The stored photo's name in the uploads folder.
    pub file: String,
    pub mime_type: String,
    pub model: String,
    pub model_title: String,
    /// Decode, preprocessing and inference time.
    pub millis: f64,
    pub top: Vec<StoredPrediction>,
}

/// One line of the results log.
#[derive(Debug, Serialize)]
pub struct LogLine<'a> {
    pub time: &'a str,
    pub id: Option<&'a str>,
    pub login: Option<&'a str>,
    /// The stored photo, or `None` for the JSON API, which stores none.
    pub file: Option<&'a str>,
    pub model: &'a str,
    pub top: &'a [StoredPrediction],
    pub millis: f64,
}

impl Storage {
    /// Opens the uploads folder, creating it and its results folder when
    /// missing, and removes temporary files a crash may have left.
    pub fn open(dir: &Path) -> anyhow::Result<Storage> {
        let results = dir.join(RESULTS_FOLDER);
        fs::create_dir_all(&results)
            .with_context(|| format!("cannot create the uploads folder {}", results.display()))?;
        for folder in [dir, results.as_path()] {
            remove_temporary_files(folder)
                .with_context(|| format!("cannot clean up {}", folder.display()))?;
        }
        Ok(Storage { dir: dir.to_path_buf(), results, log_lock: Mutex::new(()) })
    }

    /// The uploads folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores an accepted photo and returns the name it was stored under.
    pub fn store_photo(
        &self,
        login: &str,
        original: Option<&str>,
        format: Format,
        bytes: &[u8],
    ) -> io::Result<String> {
        let temp = self.dir.join(format!(".upload-{}.tmp", random_hex(8)));
        let outcome = write_file(&temp, bytes).and_then(|()| {
            // A hard link fails when the name exists, so two students
            // uploading the same name at once never overwrite each other.
            for copy in 1..=MAX_COPIES {
                let name = stored_name(login, original, format.extension(), copy);
                match fs::hard_link(&temp, self.dir.join(&name)) {
                    Ok(()) => return Ok(name),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(io::Error::other(format!("{MAX_COPIES} files already have this name")))
        });
        let _ = fs::remove_file(&temp);
        outcome
    }

    /// Removes a stored photo (when what follows storing it failed).
    pub fn remove_photo(&self, name: &str) {
        if let Err(e) = fs::remove_file(self.dir.join(name)) {
            log::error!("cannot remove {}: {e}", self.dir.join(name).display());
        }
    }

    /// The path of a stored photo.
    pub fn photo_path(&self, name: &str) -> Option<PathBuf> {
        let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']);
        plain.then(|| self.dir.join(name))
    }

    /// Saves a result for its page.
    pub fn save_result(&self, record: &ResultRecord) -> io::Result<()> {
        let path = self.result_path(&record.id).ok_or_else(|| io::Error::other("bad result id"))?;
        let temp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(record)?;
        write_file(&temp, &json)
            .and_then(|()| fs::rename(&temp, &path))
            .inspect_err(|_| drop(fs::remove_file(&temp)))
    }

    /// Loads a result; `None` when there is no such result.
    pub fn load_result(&self, id: &str) -> io::Result<Option<ResultRecord>> {
        let Some(path) = self.result_path(id) else { return Ok(None) };
        match fs::read(&path) {
            Ok(json) => Ok(Some(serde_json::from_slice(&json)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Appends a line to the results log.
    pub fn append_log(&self, line: &LogLine<'_>) -> io::Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        let _guard = self.log_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut file =
            OpenOptions::new().create(true).append(true).open(self.dir.join(RESULTS_LOG))?;
        file.write_all(text.as_bytes())
    }

    fn result_path(&self, id: &str) -> Option<PathBuf> {
        is_result_id(id).then(|| self.results.join(format!("{id}.json")))
    }
}

/// A new result id: 128 random bits in hex, which nobody can guess.
pub fn new_result_id() -> String {
    random_hex(16)
}

/// Whether `id` looks like one of ours (checked before touching the disk).
pub fn is_result_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // The system's random source only fails on a broken system; a clock-
    // based id would still be unique, though guessable, so fail loudly.
    getrandom::fill(&mut buffer).expect("the system's random number source failed");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    // On disk before it gets its real name: a crash leaves no empty photo.
    file.sync_data()
}

fn remove_temporary_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".upload-") && name.ends_with(".tmp") || name.ends_with(".json.tmp") {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The name a photo is stored under: `<login>-<original name>`, cleaned so it
/// cannot leave the folder, never empty, hidden or starting with `-`, without
/// invisible characters, at most 255 bytes, with the extension of the format
/// found in its bytes, and `-<copy>` before the extension from the second
/// copy on.
pub fn stored_name(login: &str, original: Option<&str>, extension: &str, copy: u32) -> String {
    // Browsers on Windows used to send the whole path.
    let base = original.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    // The browser's extension may lie; the real one is added below.
    let stem = match base.rsplit_once('.') {
        Some((stem, _)) if !stem.trim_matches('.').is_empty() => stem,
        _ => base,
    };
    // Invisible characters and direction overrides would make the name look
    // like another one in an administrator's listing.
    let stem: String = stem.chars().filter(|&c| !is_hidden_format(c)).collect();
    let stem = stem.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let stem = if stem.is_empty() { "photo" } else { stem };

    let options = sanitize_filename::Options { windows: true, truncate: false, replacement: "_" };
    let mut name = sanitize_filename::sanitize_with_options(format!("{login}-{stem}"), options);
    // Neither hidden, nor read as an option by `rm *` in the folder.
    if name.starts_with(['.', '-']) {
        name.insert(0, '_');
    }

    let suffix = if copy > 1 { format!("-{copy}") } else { String::new() };
    let extension = format!(".{extension}");
    let budget = MAX_NAME_BYTES - suffix.len() - extension.len();
    if name.len() > budget {
        let mut end = budget;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    format!("{name}{suffix}{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_safe_and_keep_what_they_can() {
        let long = "長".repeat(200);
        let cases: [(&str, Option<&str>, &str, u32, &str); 17] = [
            ("taro", Some("eagle.jpg"), "jpg", 1, "taro-eagle.jpg"),
            ("taro", Some("猫.jpg"), "jpg", 1, "taro-猫.jpg"),
            ("taro", Some("猫.jpg"), "jpg", 3, "taro-猫-3.jpg"),
            ("taro", Some("notes.txt"), "png", 1, "taro-notes.png"),
            ("taro", Some("archive.tar.gz"), "gif", 1, "taro-archive.tar.gif"),
            ("taro", Some("C:\\Users\\t\\dog.JPG"), "jpg", 1, "taro-dog.jpg"),
            ("taro", Some("../../etc/passwd"), "jpg", 1, "taro-passwd.jpg"),
            ("taro", Some(".."), "jpg", 1, "taro-photo.jpg"),
            ("taro", Some(".hidden"), "jpg", 1, "taro-hidden.jpg"),
            ("taro", Some(""), "jpg", 1, "taro-photo.jpg"),
            ("taro", None, "bmp", 2, "taro-photo-2.bmp"),
            ("a/b", Some("x:y?.png"), "png", 1, "a_b-x_y_.png"),
            (".ssh", Some("key.jpg"), "jpg", 1, "_.ssh-key.jpg"),
            ("t", Some("a\u{0}b\nc.jpg"), "jpg", 1, "t-a_b_c.jpg"),
            ("t", Some("\u{202e}gpj.exe.jpg"), "jpg", 1, "t-gpj.exe.jpg"),
            ("t", Some("\u{200b}.jpg"), "jpg", 1, "t-photo.jpg"),
            ("-rf", Some("cat.jpg"), "jpg", 1, "_-rf-cat.jpg"),
        ];
        for (login, original, extension, copy, expected) in cases {
            assert_eq!(stored_name(login, original, extension, copy), expected, "{original:?}");
        }

        let name = stored_name("taro", Some(&format!("{long}.jpg")), "jpg", 12);
        assert!(name.len() <= MAX_NAME_BYTES, "{} bytes", name.len());
        assert!(name.ends_with("長-12.jpg") && name.starts_with("taro-長"), "{name}");
    }

    #[test]
    fn copies_never_overwrite_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let first = storage.store_photo("taro", Some("a.png"), Format::Png, b"one").unwrap();
        let second = storage.store_photo("taro", Some("a.png"), Format::Png, b"two").unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("taro-a.png", "taro-a-2.png"));
        assert_eq!(fs::read(dir.path().join(&first)).unwrap(), b"one");
        assert_eq!(fs::read(dir.path().join(&second)).unwrap(), b"two");
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".results", "taro-a-2.png", "taro-a.png"]);
    }

    #[test]
    fn results_round_trip_and_odd_ids_find_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let id = new_result_id();
        assert!(is_result_id(&id), "{id}");
        let record = ResultRecord {
            id: id.clone(),
            time: "t".into(),
            login: "taro".into(),
            file: "taro-a.png".into(),
            mime_type: "image/png".into(),
            model: "m".into(),
            model_title: "M".into(),
            millis: 1.5,
            top: vec![],
        };
        storage.save_result(&record).unwrap();
        assert_eq!(storage.load_result(&id).unwrap().unwrap().login, "taro");
        for odd in ["", "../results.jsonl", &id.to_uppercase(), &format!("{id}0")] {
            assert!(storage.load_result(odd).unwrap().is_none(), "{odd}");
        }
        assert!(storage.load_result(&new_result_id()).unwrap().is_none());
    }
}
