//! Runs the BlockDensity extractor over HTML files, for scripts/check_html_extract.sh:
//! prints one JSON line per file, `{"path", "text", "seconds"}` (time of the extraction
//! alone, the file already read). Files that are not UTF-8 are decoded lossily.

fn main() -> std::io::Result<()> {
    use std::io::Write;
    let out = std::io::stdout();
    let mut out = out.lock();
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        let html = String::from_utf8_lossy(&bytes);
        let start = std::time::Instant::now();
        let text = fmlab_curate::read::html::extract(&html);
        let seconds = start.elapsed().as_secs_f64();
        let line = serde_json::json!({"path": path, "text": text, "seconds": seconds});
        writeln!(out, "{line}")?;
    }
    Ok(())
}
