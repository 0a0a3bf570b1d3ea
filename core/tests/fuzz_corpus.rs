//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`: seeds from the golden frames
//! and the hostile-input tables, and every input a fuzzer found) through the invariants the
//! fuzz targets check (`kite::fuzzing`), as an ordinary test.

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_file_keeps_its_target_invariants() {
    for (target, check) in kite::fuzzing::TARGETS {
        let dir = corpus(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("read a corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(
            files.len() >= 5,
            "{target}: only {} corpus files in {}",
            files.len(),
            dir.display()
        );
        for file in &files {
            let data = std::fs::read(file).expect("read a corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} breaks an invariant (see the panic above)",
                file.display()
            );
        }
        println!("{target}: {} corpus files replayed", files.len());
    }
}
